// The queue manager: delivers spooled messages, per recipient, durably.
//
// Flow: the session spools a message, calls enqueue() (cheap: a push and a
// notify) and answers 250. One worker thread takes new messages, delivers
// every due recipient through a DeliveryAgent, and records each outcome in
// the store before moving on. Deferred recipients are retried per
// retry_schedule until max_lifetime, then they fail.
//
// Per-recipient state lives in store bucket "queue", key = queue id; value
// (text, one line per item, fields tab-separated, replies with tabs and line
// ends replaced by spaces):
//   q1 <TAB> segment <TAB> offset <TAB> first_seen_unix <LF>
//   r <TAB> status <TAB> attempts <TAB> next_attempt_unix <TAB> address <TAB> last_reply <LF>
// one "r" line per envelope recipient in envelope order; status is one of
// pending, deferred, delivered, failed. No key means "all pending" (a new
// message costs no store write before its first delivery). A message is
// finished when every recipient is delivered or failed.
//
// Guarantees: a delivered recipient is written to the store before the next
// recipient is tried, so a restart never loses a recipient and re-delivers
// one only if the crash fell between the agent's success and the store
// write (at-least-once). Records with action "quarantine" are held: never
// delivered, and their segment is kept.
//
// Segments: when every record of a segment is finished and the segment is
// below current_segment() (the spool may still append to that one), its file
// is deleted, the directory fsync'ed, and only then its keys erased. A crash
// in between leaves keys without a segment; start-up erases those.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/queue/delivery_agent.h"
#include "gateway/spool/spool.h"
#include "store/kv_store.h"

namespace mxgate {

inline constexpr std::string_view kQueueBucket = "queue";

struct QueueStats {
  size_t messages = 0;  // not finished, not held
  size_t deferred = 0;  // of those, with at least one deferred recipient
  size_t held = 0;      // quarantined records kept in the spool
};

// One recipient's delivery state as stored, for admin tools.
struct RecipientDelivery {
  std::string address;
  std::string status;  // pending, deferred, delivered, failed
  uint32_t attempts = 0;
  int64_t next_attempt_unix = 0;
  std::string last_reply;
};

class QueueManager {
 public:
  // The stored state of a message's recipients; empty when nothing is stored
  // yet (every recipient still pending). Safe while the daemon runs.
  static std::vector<RecipientDelivery> loadDelivery(KvStore& store, const std::string& queue_id);

  using Clock = std::function<std::chrono::system_clock::time_point()>;
  struct Options {
    std::string segments_dir;  // the Spool's dir: <spool_dir>/segments
    KvStore* store = nullptr;
    DeliveryAgent* local = nullptr;
    // The agent for a recipient domain (lowercase; "" for bare postmaster).
    // Unset: every recipient goes to local. nullptr: no route yet, so the
    // recipient is deferred (and fails after max_lifetime).
    std::function<DeliveryAgent*(const std::string& domain)> route;
    // Delay after the 1st, 2nd, ... deferral; the last entry repeats.
    std::vector<std::chrono::seconds> retry_schedule = {
        std::chrono::minutes(15), std::chrono::minutes(30), std::chrono::minutes(60),
        std::chrono::minutes(90), std::chrono::hours(4)};
    std::chrono::seconds max_lifetime = std::chrono::hours(24 * 5);
    // The segment the spool appends to; segments >= it are never deleted.
    // Default: the highest segment in segments_dir.
    std::function<uint64_t()> current_segment;
    Clock clock;  // default: system_clock::now (tests inject one)
  };

  explicit QueueManager(Options options);
  // Stops the worker if running.
  ~QueueManager();
  QueueManager(const QueueManager&) = delete;
  QueueManager& operator=(const QueueManager&) = delete;

  // Spawns the worker thread, which first recovers the spool (recover()).
  void start();
  // Lets the current delivery finish, then joins the worker. Idempotent.
  void stop();

  // Thread-safe, non-blocking: a push and a notify. Call once the record is
  // durable in the spool. Records already known (by queue id) are ignored.
  void enqueue(const SpoolMeta& meta, SpoolLocation loc);

  QueueStats stats() const;

  // The worker's steps, public so tests and tools can drive the queue by
  // hand. REQUIRES: the worker thread is not running.
  //
  // Erases keys of vanished segments, then reads every segment and schedules
  // each record not finished in the store.
  void recover();
  // Admits enqueued messages, delivers every recipient due now, deletes
  // drained segments. Returns the number of delivery attempts made.
  size_t runDue();

 private:
  enum class Status : uint8_t { kPending, kDeferred, kDelivered, kFailed };
  struct RcptState {
    Status status = Status::kPending;
    uint32_t attempts = 0;
    int64_t next_attempt = 0;  // unix seconds
    std::string address;
    std::string last_reply;
  };
  struct Message {
    SpoolLocation loc;
    int64_t first_seen = 0;  // unix seconds
    int64_t received_ms = 0;
    bool held = false;
    bool finished = false;
    int64_t due = 0;  // earliest next_attempt of an open recipient
    std::vector<RcptState> rcpts;
  };
  struct Segment {
    std::vector<std::string> ids;
    size_t open = 0;  // records not finished (held ones stay open)
  };

  static std::string encodeState(const Message& m);
  static bool decodeState(std::string_view text, Message* m);
  static const char* statusName(Status s);
  static bool isFinal(Status s) { return s == Status::kDelivered || s == Status::kFailed; }
  static bool hasDeferred(const Message& m);

  int64_t nowUnix() const;
  // Adds a record to the in-memory queue (state from the store if any).
  void admit(const std::string& id, const SpoolMeta& meta, SpoolLocation loc);
  void deliverMessage(const std::string& id, Message& m);
  void persist(const std::string& id, const Message& m);
  void refreshDue(const std::string& id, Message& m);
  void dropDrainedSegments();
  void publishStats();
  void workerLoop();

  Options options_;

  // Shared with enqueue() and stats().
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<SpoolMeta, SpoolLocation>> incoming_;
  bool stopping_ = false;
  QueueStats stats_;
  std::atomic<bool> stop_requested_{false};

  // Worker-only state (or the caller of recover()/runDue()).
  std::unordered_map<std::string, Message> messages_;
  std::map<uint64_t, Segment> segments_;
  std::set<std::pair<int64_t, std::string>> schedule_;  // (due, id) of open, unheld messages
  size_t open_count_ = 0;                               // QueueStats::messages
  size_t deferred_count_ = 0;                           // QueueStats::deferred
  size_t held_count_ = 0;                               // QueueStats::held
  std::thread worker_;
};

}  // namespace mxgate
