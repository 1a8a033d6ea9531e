#include "gateway/spool/spool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <latch>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include "gateway/util/temp_dir.h"

namespace mxgate {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using mxgate::testing::TempDir;

// Sends spdlog's default logger to a string while alive.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() const { return out_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

SpoolMeta makeMeta(const std::string& id) {
  SpoolMeta m;
  m.queue_id = id;
  m.received_ms = 1'700'000'000'123;
  m.client_ip = "2001:db8::7";
  m.client_name = "client.example";
  m.helo = "helo.example";
  m.protocol = "ESMTPS";
  m.auth_user = "";
  m.envelope.mail_from = "sender-" + id + "@example.org";
  m.envelope.declared_size = 1234;
  m.envelope.body = "8BITMIME";
  m.envelope.smtputf8 = true;
  m.envelope.ret = "HDRS";
  m.envelope.envid = "ENV+2B" + id;
  m.envelope.rcpts = {{"a@example.com", "SUCCESS,FAILURE", "rfc822;a+40example.com"},
                      {"postmaster", "", ""},
                      {"c@example.com", "NEVER", ""}};
  m.action = "tag_subject";
  m.score = 8.25;
  m.symbols = "TEST_A(5.00) TEST_B(3.25)";
  return m;
}

void expectSameMeta(const SpoolMeta& a, const SpoolMeta& b) {
  EXPECT_EQ(a.queue_id, b.queue_id);
  EXPECT_EQ(a.received_ms, b.received_ms);
  EXPECT_EQ(a.client_ip, b.client_ip);
  EXPECT_EQ(a.client_name, b.client_name);
  EXPECT_EQ(a.helo, b.helo);
  EXPECT_EQ(a.protocol, b.protocol);
  EXPECT_EQ(a.auth_user, b.auth_user);
  EXPECT_EQ(a.envelope.mail_from, b.envelope.mail_from);
  EXPECT_EQ(a.envelope.declared_size, b.envelope.declared_size);
  EXPECT_EQ(a.envelope.body, b.envelope.body);
  EXPECT_EQ(a.envelope.smtputf8, b.envelope.smtputf8);
  EXPECT_EQ(a.envelope.ret, b.envelope.ret);
  EXPECT_EQ(a.envelope.envid, b.envelope.envid);
  ASSERT_EQ(a.envelope.rcpts.size(), b.envelope.rcpts.size());
  for (size_t i = 0; i < a.envelope.rcpts.size(); ++i) {
    EXPECT_EQ(a.envelope.rcpts[i].address, b.envelope.rcpts[i].address) << i;
    EXPECT_EQ(a.envelope.rcpts[i].notify, b.envelope.rcpts[i].notify) << i;
    EXPECT_EQ(a.envelope.rcpts[i].orcpt, b.envelope.rcpts[i].orcpt) << i;
  }
  EXPECT_EQ(a.action, b.action);
  EXPECT_DOUBLE_EQ(a.score, b.score);
  EXPECT_EQ(a.symbols, b.symbols);
}

struct StoredRecord {
  SpoolMeta meta;
  std::string body;
  SpoolLocation where;
};

// Every complete record in dir, keyed by queue id; fails the test on a
// duplicate id or on a segment that did not read cleanly.
std::map<std::string, StoredRecord> readAllRecords(const std::string& dir) {
  std::map<std::string, StoredRecord> out;
  for (const auto& [n, path] : listSegments(dir)) {
    SegmentReport rep = readSegment(path, n, [&](const SpoolRecordView& v) {
      EXPECT_EQ(out.count(v.meta.queue_id), 0u) << "duplicate " << v.meta.queue_id;
      out[v.meta.queue_id] = StoredRecord{v.meta, std::string(v.body), {v.segment, v.offset}};
      return true;
    });
    EXPECT_EQ(rep.problem, "") << path;
    EXPECT_EQ(rep.trailing_bytes, 0u) << path;
  }
  return out;
}

// Appends one record and waits for its completion.
std::pair<std::error_code, SpoolLocation> appendSync(Spool& spool, const std::string& id,
                                                     const std::string& body) {
  std::promise<std::pair<std::error_code, SpoolLocation>> done;
  auto f = done.get_future();
  spool.append(encodeMeta(makeMeta(id)), {body}, [&](std::error_code ec, SpoolLocation loc) {
    done.set_value({ec, loc});
  });
  return f.get();
}

std::string bodyFor(const std::string& id) {
  return "Received: from x\r\nSubject: message " + id + "\r\n\r\n" + std::string(100, 'b') + id +
         "\r\n";
}

uint64_t fileSize(const std::string& path) {
  return fs::file_size(path);
}

TEST(SpoolMeta, EncodeDecodeRoundTrip) {
  SpoolMeta in = makeMeta("Q1");
  in.auth_user = "carol";
  SpoolMeta out;
  ASSERT_TRUE(decodeMeta(encodeMeta(in), &out));
  expectSameMeta(in, out);
}

TEST(SpoolMeta, EmptyOptionalFieldsAndNullSender) {
  SpoolMeta in;
  in.queue_id = "Q2";
  in.envelope.rcpts = {{"x@y.example", "", ""}};
  SpoolMeta out;
  ASSERT_TRUE(decodeMeta(encodeMeta(in), &out));
  expectSameMeta(in, out);
  EXPECT_EQ(out.envelope.mail_from, "");
}

TEST(SpoolMeta, TabsAndLineEndsBecomeSpaces) {
  SpoolMeta in = makeMeta("Q3");
  in.helo = "bad\thelo\r\nX: y";
  in.envelope.rcpts = {{"a@x.example", "NEVER", "rfc\t822;a\r\nb"}};
  const std::string text = encodeMeta(in);
  SpoolMeta out;
  ASSERT_TRUE(decodeMeta(text, &out)) << text;
  EXPECT_EQ(out.helo, "bad helo  X: y");
  ASSERT_EQ(out.envelope.rcpts.size(), 1u);
  EXPECT_EQ(out.envelope.rcpts[0].address, "a@x.example");
  EXPECT_EQ(out.envelope.rcpts[0].notify, "NEVER");
  EXPECT_EQ(out.envelope.rcpts[0].orcpt, "rfc 822;a  b");
}

TEST(SpoolMeta, DecodeRejectsBrokenText) {
  for (std::string_view text : {"id\tQ\nfrom\tx", "from\tx\n", "id\tQ\nrcpt\ta\tb\n", "id\n"}) {
    SpoolMeta m;
    EXPECT_FALSE(decodeMeta(text, &m)) << text;
  }
  SpoolMeta ok;
  EXPECT_TRUE(decodeMeta("id\tQ\nnewer_key\tx\n", &ok)) << "unknown keys are skipped";
  EXPECT_EQ(ok.queue_id, "Q");
}

TEST(Spool, ConcurrentAppendsAreAllStoredIntact) {
  TempDir dir;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  std::vector<std::string> bodies(kThreads * kPerThread);
  for (int i = 0; i < kThreads * kPerThread; ++i) bodies[i] = bodyFor("M" + std::to_string(i));
  std::atomic<int> ok{0}, failed{0};
  std::map<std::string, SpoolLocation> where;
  std::mutex where_mu;
  {
    Spool spool({.dir = dir.path()});
    std::latch start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kPerThread; ++i) {
          int n = t * kPerThread + i;
          std::string id = "M" + std::to_string(n);
          const std::string& body = bodies[n];
          // Two parts, split in the middle, as message edits produce.
          std::vector<std::string_view> parts{std::string_view(body).substr(0, 20),
                                              std::string_view(body).substr(20)};
          spool.append(encodeMeta(makeMeta(id)), parts,
                       [&, id](std::error_code ec, SpoolLocation loc) {
                         (ec ? failed : ok)++;
                         std::lock_guard lock(where_mu);
                         where[id] = loc;
                       });
        }
      });
    }
    for (auto& th : threads) th.join();
  }  // the destructor finishes every queued append
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);

  auto records = readAllRecords(dir.path());
  ASSERT_EQ(records.size(), static_cast<size_t>(kThreads * kPerThread));
  for (int n = 0; n < kThreads * kPerThread; ++n) {
    std::string id = "M" + std::to_string(n);
    auto it = records.find(id);
    ASSERT_NE(it, records.end()) << id;
    SCOPED_TRACE(id);
    expectSameMeta(it->second.meta, makeMeta(id));
    EXPECT_EQ(it->second.body, bodies[n]);
    EXPECT_EQ(it->second.where.segment, where[id].segment);
    EXPECT_EQ(it->second.where.offset, where[id].offset);
  }
}

TEST(Spool, RotatesSegmentsAtTheSizeLimit) {
  TempDir dir;
  // Records of equal size; a segment takes a second record while it is under
  // the limit, then the next batch starts a new one.
  const uint64_t record = kRecordHeaderSize + encodeMeta(makeMeta("R0")).size() +
                          bodyFor("R0").size() + kRecordTrailerSize;
  {
    Spool spool({.dir = dir.path(), .segment_size = kSegmentHeaderSize + record + 1});
    for (int i = 0; i < 6; ++i) {
      auto [ec, loc] = appendSync(spool, "R" + std::to_string(i), bodyFor("R" + std::to_string(i)));
      ASSERT_FALSE(ec) << ec.message();
      EXPECT_EQ(loc.segment, static_cast<uint64_t>(i / 2 + 1)) << i;
    }
  }
  auto segments = listSegments(dir.path());
  ASSERT_EQ(segments.size(), 3u);
  for (size_t i = 0; i < segments.size(); ++i) {
    EXPECT_EQ(segments[i].first, i + 1);
    SegmentReport rep = readSegment(segments[i].second, segments[i].first,
                                    [](const SpoolRecordView&) { return true; });
    EXPECT_EQ(rep.records, 2u);
    EXPECT_EQ(rep.problem, "");
  }
  EXPECT_EQ(readAllRecords(dir.path()).size(), 6u);
}

TEST(Spool, ReopenRecoversAndStartsANewSegment) {
  TempDir dir;
  {
    Spool spool({.dir = dir.path()});
    for (int i = 0; i < 3; ++i) ASSERT_FALSE(appendSync(spool, "A" + std::to_string(i), "x").first);
  }
  Spool spool({.dir = dir.path()});
  EXPECT_EQ(spool.recovery().segments, 1u);
  EXPECT_EQ(spool.recovery().records, 3u);
  EXPECT_EQ(spool.recovery().torn_segments, 0u);
  auto [ec, loc] = appendSync(spool, "B0", "y");
  ASSERT_FALSE(ec);
  EXPECT_EQ(loc.segment, 2u);
  EXPECT_EQ(loc.offset, kSegmentHeaderSize);
  EXPECT_EQ(listSegments(dir.path()).size(), 2u);
}

TEST(Spool, TruncatedTailStopsAtTheLastCompleteRecord) {
  TempDir dir;
  uint64_t third_offset = 0;
  {
    Spool spool({.dir = dir.path()});
    for (int i = 0; i < 3; ++i) {
      auto [ec, loc] = appendSync(spool, "T" + std::to_string(i), bodyFor("T"));
      ASSERT_FALSE(ec);
      if (i == 2) third_offset = loc.offset;
    }
  }
  auto segments = listSegments(dir.path());
  ASSERT_EQ(segments.size(), 1u);
  const std::string path = segments[0].second;
  const uint64_t full = fileSize(path);
  fs::resize_file(path, full - 5);

  std::vector<std::string> ids;
  SegmentReport rep = readSegment(path, 1, [&](const SpoolRecordView& v) {
    ids.push_back(v.meta.queue_id);
    return true;
  });
  EXPECT_EQ(ids, (std::vector<std::string>{"T0", "T1"}));
  EXPECT_EQ(rep.records, 2u);
  EXPECT_EQ(rep.valid_bytes, third_offset);
  EXPECT_EQ(rep.trailing_bytes, full - 5 - third_offset);
  EXPECT_EQ(rep.problem, "torn record");

  LogCapture log;
  Spool spool({.dir = dir.path()});
  EXPECT_EQ(spool.recovery().segments, 1u);
  EXPECT_EQ(spool.recovery().records, 2u);
  EXPECT_EQ(spool.recovery().torn_segments, 1u);
  EXPECT_NE(log.text().find("torn record after 2 complete records"), std::string::npos)
      << log.text();
  // New records go to a new segment; the torn one is left as it was.
  auto [ec, loc] = appendSync(spool, "T3", "z");
  ASSERT_FALSE(ec);
  EXPECT_EQ(loc.segment, 2u);
  EXPECT_EQ(fileSize(path), full - 5);
}

TEST(Spool, GarbageAfterTheLastRecordIsReported) {
  TempDir dir;
  {
    Spool spool({.dir = dir.path()});
    for (int i = 0; i < 2; ++i) ASSERT_FALSE(appendSync(spool, "G" + std::to_string(i), "g").first);
  }
  const std::string path = listSegments(dir.path()).at(0).second;
  const uint64_t good = fileSize(path);
  for (const std::string& garbage : {std::string("short"), std::string(64, '\x55')}) {
    fs::resize_file(path, good);
    {
      std::ofstream f(path, std::ios::binary | std::ios::app);
      f << garbage;
    }
    SegmentReport rep = readSegment(path, 1, [](const SpoolRecordView&) { return true; });
    EXPECT_EQ(rep.records, 2u);
    EXPECT_EQ(rep.valid_bytes, good);
    EXPECT_EQ(rep.trailing_bytes, garbage.size());
    EXPECT_EQ(rep.problem, garbage.size() < 24 ? "torn record header" : "bad record magic");
  }
}

TEST(Spool, CorruptedByteIsAChecksumMismatch) {
  TempDir dir;
  uint64_t second_offset = 0;
  {
    Spool spool({.dir = dir.path()});
    for (int i = 0; i < 3; ++i) {
      auto [ec, loc] = appendSync(spool, "C" + std::to_string(i), bodyFor("C"));
      ASSERT_FALSE(ec);
      if (i == 1) second_offset = loc.offset;
    }
  }
  const std::string path = listSegments(dir.path()).at(0).second;
  {
    // Flip one bit inside the second record (its envelope or body).
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    const auto at = static_cast<std::streamoff>(second_offset + 200);
    f.seekg(at);
    const char c = static_cast<char>(f.get());
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x01));
    ASSERT_TRUE(f.good());
  }
  SegmentReport rep = readSegment(path, 1, [](const SpoolRecordView&) { return true; });
  EXPECT_EQ(rep.records, 1u);
  EXPECT_EQ(rep.valid_bytes, second_offset);
  EXPECT_EQ(rep.problem, "record checksum mismatch");
}

TEST(Spool, CallbackCanStopReading) {
  TempDir dir;
  {
    Spool spool({.dir = dir.path()});
    for (int i = 0; i < 3; ++i) ASSERT_FALSE(appendSync(spool, "S" + std::to_string(i), "s").first);
  }
  int seen = 0;
  SegmentReport rep = readSegment(listSegments(dir.path()).at(0).second, 1,
                                  [&](const SpoolRecordView&) { return ++seen < 2; });
  EXPECT_EQ(seen, 2);
  EXPECT_EQ(rep.records, 2u);
  EXPECT_EQ(rep.problem, "");
}

TEST(Spool, ListSegmentsIgnoresOtherFiles) {
  TempDir dir;
  for (const char* name :
       {"seg-0000000000000002.dat", "seg-000000000000000a.dat", "seg-0000000000000001.dat",
        "seg-1.dat", "seg-000000000000000g.dat", "notes.txt", "seg-0000000000000003.dat.tmp"})
    std::ofstream(dir.path() + "/" + name) << "";
  auto segs = listSegments(dir.path());
  ASSERT_EQ(segs.size(), 3u);
  EXPECT_EQ(segs[0].first, 1u);
  EXPECT_EQ(segs[1].first, 2u);
  EXPECT_EQ(segs[2].first, 10u);
}

TEST(Spool, CoroutineWriteCompletesOnTheCallersExecutor) {
  TempDir dir;
  Spool spool({.dir = dir.path()});
  asio::io_context io;
  std::error_code result_ec = std::make_error_code(std::errc::interrupted);
  SpoolLocation result_loc;
  std::thread::id completed_on;
  const std::string body = "coroutine body";
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // (A braced list here trips a g++ 12 coroutine bug: build the vector first.)
        std::vector<std::string_view> parts{body};
        std::tuple<std::error_code, SpoolLocation> r =
            co_await spool.write(encodeMeta(makeMeta("W1")), std::move(parts));
        result_ec = std::get<0>(r);
        result_loc = std::get<1>(r);
        completed_on = std::this_thread::get_id();
      },
      asio::detached);
  io.run();
  EXPECT_FALSE(result_ec);
  EXPECT_EQ(result_loc.segment, 1u);
  EXPECT_EQ(completed_on, std::this_thread::get_id());
}

// --- fault injection ------------------------------------------------------

// Fails or delays chosen system calls. Record writes are told apart from the
// segment header write by their vector count (a record is at least two).
class FaultyOps : public FileOps {
 public:
  ssize_t writev(int fd, const iovec* iov, int count) override {
    std::unique_lock lock(mu_);
    if (count >= 2 && fail_record_writes_ > 0) {
      --fail_record_writes_;
      if (partial_first_) {
        // Write part of the first vector for real, then fail the next call:
        // the segment is left holding a partial record.
        partial_first_ = false;
        ++fail_record_writes_;
        lock.unlock();
        return FileOps::writev(fd, iov, 1) > 0 ? static_cast<ssize_t>(iov[0].iov_len) : -1;
      }
      errno = ENOSPC;
      return -1;
    }
    lock.unlock();
    return FileOps::writev(fd, iov, count);
  }

  int fdatasync(int fd) override {
    std::unique_lock lock(mu_);
    ++syncs_;
    bool fail = false;
    if (fail_syncs_ > 0) {
      --fail_syncs_;
      fail = true;
    }
    if (hold_syncs_) {
      held_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !hold_syncs_; });
      held_ = false;
    }
    auto delay = sync_delay_;
    lock.unlock();
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    if (fail) {
      errno = EIO;
      return -1;
    }
    return FileOps::fdatasync(fd);
  }

  int ftruncate(int fd, off_t length) override {
    truncated_to_ = length;
    return FileOps::ftruncate(fd, length);
  }

  // Makes the next record syncs wait until release() is called, and
  // blocks until one is waiting.
  void holdNextSync() {
    std::lock_guard lock(mu_);
    hold_syncs_ = true;
  }
  void waitUntilHeld() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return held_; });
  }
  void release() {
    std::lock_guard lock(mu_);
    hold_syncs_ = false;
    cv_.notify_all();
  }
  void failRecordWrites(int n, bool partial_first) {
    std::lock_guard lock(mu_);
    fail_record_writes_ = n;
    partial_first_ = partial_first;
  }
  void failSyncs(int n) {
    std::lock_guard lock(mu_);
    fail_syncs_ = n;
  }
  void setSyncDelay(std::chrono::milliseconds d) {
    std::lock_guard lock(mu_);
    sync_delay_ = d;
  }
  int syncs() {
    std::lock_guard lock(mu_);
    return syncs_;
  }
  off_t truncatedTo() const { return truncated_to_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_syncs_ = false;
  bool held_ = false;
  int fail_record_writes_ = 0;
  bool partial_first_ = false;
  int fail_syncs_ = 0;
  std::chrono::milliseconds sync_delay_{0};
  int syncs_ = 0;
  std::atomic<off_t> truncated_to_{-1};
};

// Writes A (own batch), then B whose sync is held while C, D, E queue up
// behind it; arm() then sets up the fault for the C-D-E batch. Checks that
// the whole batch failed, that the segment holds exactly A and B, and that
// the next append lands in a new segment.
void runFailedBatchScenario(const std::function<void(FaultyOps&)>& arm, std::errc expected_error) {
  TempDir dir;
  FaultyOps ops;
  LogCapture log;  // the spool logs the failure; keep the test output clean
  std::vector<std::pair<std::string, std::error_code>> results;
  std::mutex results_mu;
  std::latch batch_done(4);
  auto done_for = [&](std::string id) {
    return [&, id](std::error_code ec, SpoolLocation) {
      {
        std::lock_guard lock(results_mu);
        results.emplace_back(id, ec);
      }
      batch_done.count_down();
    };
  };
  const std::string body = bodyFor("F");
  {
    Spool spool({.dir = dir.path(), .ops = &ops});
    ASSERT_FALSE(appendSync(spool, "A", body).first);
    const uint64_t seg1_after_a = fileSize(listSegments(dir.path()).at(0).second);

    ops.holdNextSync();
    spool.append(encodeMeta(makeMeta("B")), {body}, done_for("B"));
    ops.waitUntilHeld();
    for (const char* id : {"C", "D", "E"})
      spool.append(encodeMeta(makeMeta(id)), {body}, done_for(id));
    arm(ops);
    ops.release();
    batch_done.wait();

    std::map<std::string, std::error_code> by_id(results.begin(), results.end());
    EXPECT_FALSE(by_id["B"]) << by_id["B"].message();
    for (const char* id : {"C", "D", "E"})
      EXPECT_TRUE(by_id[id] == expected_error) << id << ": " << by_id[id].message();

    // The failed batch was cut off: segment 1 ends right after B.
    const std::string seg1 = listSegments(dir.path()).at(0).second;
    std::vector<std::string> ids;
    SegmentReport rep = readSegment(seg1, 1, [&](const SpoolRecordView& v) {
      ids.push_back(v.meta.queue_id);
      return true;
    });
    EXPECT_EQ(ids, (std::vector<std::string>{"A", "B"}));
    EXPECT_EQ(rep.problem, "");
    EXPECT_EQ(rep.trailing_bytes, 0u);
    EXPECT_EQ(static_cast<uint64_t>(ops.truncatedTo()), fileSize(seg1));
    EXPECT_EQ(fileSize(seg1), seg1_after_a + (seg1_after_a - kSegmentHeaderSize));

    // The next append succeeds, in a fresh segment.
    auto [ec, loc] = appendSync(spool, "F", body);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(loc.segment, 2u);
  }
  EXPECT_NE(log.text().find("writing 3 message(s) to segment 1 failed"), std::string::npos)
      << log.text();
  auto all = readAllRecords(dir.path());
  EXPECT_EQ(all.size(), 3u);
  EXPECT_EQ(all.count("A") + all.count("B") + all.count("F"), 3u);
}

TEST(SpoolFaults, WriteErrorFailsTheWholeBatchAndLeavesNoPartialRecord) {
  runFailedBatchScenario([](FaultyOps& ops) { ops.failRecordWrites(1, /*partial_first=*/false); },
                         std::errc::no_space_on_device);
}

TEST(SpoolFaults, PartialWriteThenErrorIsCutBack) {
  runFailedBatchScenario([](FaultyOps& ops) { ops.failRecordWrites(1, /*partial_first=*/true); },
                         std::errc::no_space_on_device);
}

TEST(SpoolFaults, SyncErrorFailsTheWholeBatch) {
  runFailedBatchScenario([](FaultyOps& ops) { ops.failSyncs(1); }, std::errc::io_error);
}

TEST(SpoolFaults, GroupCommitSharesSyncs) {
  TempDir dir;
  FaultyOps ops;
  ops.setSyncDelay(20ms);
  constexpr int kWriters = 50;
  const std::string body = bodyFor("G");
  std::atomic<int> ok{0};
  std::latch done(kWriters);
  uint64_t syncs = 0;
  {
    Spool spool({.dir = dir.path(), .ops = &ops});
    std::latch start(kWriters);
    std::vector<std::thread> threads;
    for (int i = 0; i < kWriters; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        spool.append(encodeMeta(makeMeta("G" + std::to_string(i))), {body},
                     [&](std::error_code ec, SpoolLocation) {
                       if (!ec) ++ok;
                       done.count_down();
                     });
      });
    }
    for (auto& t : threads) t.join();
    done.wait();
    syncs = spool.syncCount();
  }
  EXPECT_EQ(ok.load(), kWriters);
  EXPECT_GE(syncs, 1u);
  EXPECT_LE(syncs, 10u) << "one sync per batch, not per record";
  EXPECT_EQ(static_cast<uint64_t>(ops.syncs()), syncs);
  EXPECT_EQ(readAllRecords(dir.path()).size(), static_cast<size_t>(kWriters));
}

}  // namespace
}  // namespace mxgate
