// The durable spool: append-only segment files with group commit.
//
// Contract: the completion for a record runs only after the record and every
// record queued before it are written and fdatasync'ed (and, for a new
// segment, its directory entry fsync'ed). Only then may the session answer
// 250. One sync covers every record queued while the previous sync ran, so
// durability costs one disk flush per batch, not per message.
//
// On any write or sync error the whole batch fails (the session answers 451
// 4.3.0), the segment is cut back to its last good record, and the next batch
// goes to a fresh segment: nothing half-written is ever followed by an
// acknowledged record.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "gateway/spool/spool_record.h"

namespace mxgate {

// System calls the spool makes, as a seam for fault-injection tests.
class FileOps {
 public:
  virtual ~FileOps() = default;
  virtual int open(const char* path, int flags, mode_t mode);
  virtual ssize_t writev(int fd, const iovec* iov, int count);
  virtual int fdatasync(int fd);
  virtual int fsync(int fd);
  virtual int ftruncate(int fd, off_t length);
  virtual int close(int fd);
};

struct SpoolLocation {
  uint64_t segment = 0;
  uint64_t offset = 0;
};

class Spool {
 public:
  struct Options {
    std::string dir;
    uint64_t segment_size = 64ull << 20;
    FileOps* ops = nullptr;  // default: the real system calls
  };
  struct Recovery {
    uint64_t segments = 0;
    uint64_t records = 0;
    uint64_t torn_segments = 0;  // segments ending in an unacknowledged partial write
    uint64_t unreadable = 0;     // complete records whose envelope could not be decoded
  };
  using Done = std::function<void(std::error_code, SpoolLocation)>;

  // Creates the directory if needed and checks existing segments.
  // Throws std::system_error naming the path on failure.
  explicit Spool(Options options);
  // Finishes every queued append, then stops the writer thread.
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Queues a record. REQUIRES: body parts stay valid until done runs.
  // done runs on the writer thread; it must not block.
  void append(std::string meta, std::vector<std::string_view> body, Done done);

  // append() for coroutines: completes on the caller's executor.
  asio::awaitable<std::tuple<std::error_code, SpoolLocation>> write(
      std::string meta, std::vector<std::string_view> body);

  const Recovery& recovery() const { return recovery_; }
  const std::string& dir() const { return options_.dir; }
  // Batches and syncs so far (for the log and benchmarks).
  uint64_t syncCount() const;
  // The segment records are appended to now (or will be, once one is
  // opened). Segments below it are closed for good.
  uint64_t currentSegment() const { return current_.load(); }

 private:
  struct Pending {
    std::string head;  // record header + meta
    std::vector<std::string_view> body;
    uint64_t body_len = 0;
    std::string tail;  // crc + end marker, filled by the writer
    Done done;
  };

  void writerLoop();
  std::error_code writeBatch(std::deque<Pending>& batch, std::vector<SpoolLocation>* locs);
  std::error_code openSegment();
  void closeSegment();

  Options options_;
  FileOps default_ops_;
  FileOps* ops_;
  Recovery recovery_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  uint64_t syncs_ = 0;

  // Writer-thread state.
  int fd_ = -1;
  uint64_t segment_ = 0;
  std::atomic<uint64_t> current_{0};  // segment_, for other threads; 1 more before the first open
  uint64_t size_ = 0;
  int dir_fd_ = -1;
  std::thread writer_;
};

}  // namespace mxgate
