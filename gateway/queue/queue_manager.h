// The queue manager: delivers spooled messages, per recipient, durably.
//
// Flow: the session spools a message, calls enqueue() (cheap: a push and a
// post) and answers 250. The manager's own thread runs an event loop: it
// admits new messages, and whenever messages are due it groups each one's
// open recipients by destination (Options::route: local Maildir, a
// [[route]]'s hosts, or an MX domain) and queues one delivery job per group.
// Jobs start highest priority first, within a limit per destination and an
// overall one, so a slow or dead destination only ever holds its own slots.
// Each job's outcome is recorded in the store before the recipients count as
// done. Deferred recipients are retried per the destination's retry
// schedule until its max_lifetime, then they fail; a destination that could
// not be reached at all is backed off for a while, and recipients whose
// domain fails to resolve dns_error_limit times fail early.
//
// Per-recipient state lives in store bucket "queue", key = queue id; value
// (text, one line per item, fields tab-separated, replies with tabs and line
// ends replaced by spaces):
//   q1 <TAB> segment <TAB> offset <TAB> first_seen_unix [<TAB> flags] <LF>
//   r <TAB> status <TAB> attempts <TAB> next_attempt_unix <TAB> address <TAB> last_reply
//     [<TAB> dns_errors] <LF>
// one "r" line per envelope recipient in envelope order; status is one of
// pending, deferred, delivered, failed; flags is a set of letters: "h" held
// by the admin, "r" released from quarantine. No key means "all pending" (a
// new message costs no store write before its first delivery). A message is
// finished when every recipient is delivered or failed.
//
// Guarantees: a job's results are written to the store before its
// recipients are done with, so a restart never loses a recipient and
// re-delivers one only if the crash fell between the destination's success
// and the store write (at-least-once). Local deliveries narrow that window
// further: the pool thread records each one in bucket "queue_done" (key
// "<id>/<recipient index>") as soon as the Maildir is durable; admit()
// merges those records, and segment clean-up erases them with the state. Records with action
// "quarantine" are held until released: never delivered, and their segment is kept.
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

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "gateway/config/config.h"
#include "gateway/queue/delivery_agent.h"
#include "gateway/spool/spool.h"
#include "gateway/util/worker_pool.h"
#include "store/kv_store.h"

namespace mxgate {

inline constexpr std::string_view kQueueBucket = "queue";

struct QueueStats {
  size_t messages = 0;  // not finished, not held
  size_t deferred = 0;  // of those, with at least one deferred recipient
  size_t held = 0;      // quarantined or held by the admin, kept in the spool
  size_t active = 0;    // delivery jobs in flight
};

// One recipient's delivery state as stored, for admin tools.
struct RecipientDelivery {
  std::string address;
  std::string status;  // pending, deferred, delivered, failed
  uint32_t attempts = 0;
  int64_t next_attempt_unix = 0;
  std::string last_reply;
};

// Where one recipient goes (see Options::route).
struct Destination {
  // The unit of concurrency, back-off and admin holds: "local",
  // "route:<name>" or "mx:<domain>".
  std::string key;
  // Null: the local agent (Options::local). Otherwise an asynchronous transport.
  Transport* transport = nullptr;
  const RouteConfig* route = nullptr;
  // Non-empty: there is no way to deliver this recipient now; it is
  // deferred with this reply ("4.x.x text") without an attempt.
  std::string unavailable;
};

class QueueManager {
 public:
  // The stored state of a message's recipients; empty when nothing is stored
  // yet (every recipient still pending). Safe while the daemon runs.
  static std::vector<RecipientDelivery> loadDelivery(KvStore& store, const std::string& queue_id);
  // Admin flags of a stored message ("h" held, "r" released); "" if none.
  static std::string loadFlags(KvStore& store, const std::string& queue_id);

  using Clock = std::function<std::chrono::system_clock::time_point()>;
  struct Options {
    std::string segments_dir;  // the Spool's dir: <spool_dir>/segments
    KvStore* store = nullptr;
    DeliveryAgent* local = nullptr;
    // The destination of a recipient domain (lowercase; "" for bare
    // postmaster) for a message of the given priority. Unset: everything
    // goes to local.
    std::function<Destination(const std::string& domain, int priority)> route;
    // Delay after the 1st, 2nd, ... deferral; the last entry repeats. A
    // route's own schedule and lifetime take precedence.
    std::vector<std::chrono::seconds> retry_schedule = {
        std::chrono::minutes(15), std::chrono::minutes(30), std::chrono::minutes(60),
        std::chrono::minutes(90), std::chrono::hours(4)};
    std::chrono::seconds max_lifetime = std::chrono::hours(24 * 5);
    uint32_t dns_error_limit = 2;
    size_t max_concurrency = 100;
    size_t destination_concurrency = 20;
    // How long a destination that could not be reached is left alone
    // (recipients for it are deferred without an attempt meanwhile).
    std::chrono::seconds destination_backoff = std::chrono::seconds(60);
    PriorityConfig priority;
    size_t local_threads = 2;  // worker threads for the blocking local agent
    // The segment the spool appends to; segments >= it are never deleted.
    // Default: the highest segment in segments_dir.
    std::function<uint64_t()> current_segment;
    Clock clock;  // default: system_clock::now (tests inject one)
    // Called (on the queue thread) for recipients that failed for good,
    // once per message and job; the bounce generator hooks in here.
    std::function<void(const LoadedMessage& message, const std::vector<size_t>& rcpts,
                       const std::vector<DeliveryResult>& results)>
        on_failed;
    // Called once the worker has stopped, before the queue's event loop is
    // destroyed: transports drop what they hold on that loop (connections).
    std::function<void()> on_stopped;
  };

  explicit QueueManager(Options options);
  // Stops the worker if running.
  ~QueueManager();
  QueueManager(const QueueManager&) = delete;
  QueueManager& operator=(const QueueManager&) = delete;

  // Spawns the worker thread, which first recovers the spool (recover()).
  void start();
  // Starts no new job, waits up to `grace` for running ones, then joins the
  // worker. Recipients of jobs cut short stay as they were (retried after a
  // restart). Idempotent.
  void stop(std::chrono::seconds grace = std::chrono::seconds(10));

  // Thread-safe, non-blocking: a push and a post. Call once the record is
  // durable in the spool. Records already known (by queue id) are ignored.
  void enqueue(const SpoolMeta& meta, SpoolLocation loc);

  QueueStats stats() const;

  // An admin command (mxgatectl queue ...), run on the queue thread; done
  // gets the reply text, first line "ok ..." or "error ...". Thread-safe.
  // Commands: flush [ID], flush-domain DOMAIN, retry-reset [DOMAIN], hold ID, release ID,
  // delete ID, hold-domain DOMAIN, release-domain DOMAIN, holds.
  void command(std::string line, std::function<void(std::string)> done);

  // The worker's steps, public so tests and tools can drive the queue by
  // hand. REQUIRES: the worker thread is not running.
  //
  // Erases keys of vanished segments, then reads every segment and schedules
  // each record not finished in the store.
  void recover();
  // Admits enqueued messages, runs every delivery due now to completion,
  // deletes drained segments. Returns the number of recipient attempts made.
  size_t runDue();
  // Runs an admin command at once (see command()).
  std::string commandNow(const std::string& line);

 private:
  enum class Status : uint8_t { kPending, kDeferred, kDelivered, kFailed };
  struct RcptState {
    Status status = Status::kPending;
    uint32_t attempts = 0;
    int64_t next_attempt = 0;  // unix seconds
    uint32_t dns_errors = 0;
    bool in_flight = false;  // part of a running job
    std::string address;
    std::string last_reply;
  };
  struct Message {
    SpoolLocation loc;
    int64_t first_seen = 0;  // unix seconds
    int64_t received_ms = 0;
    uint64_t size = 0;
    std::string sender_domain;
    bool quarantined = false;  // action "quarantine", not released
    bool admin_hold = false;
    bool released = false;
    bool finished = false;
    int base_priority = 5;
    int64_t due = 0;                              // earliest next_attempt of an open recipient
    size_t jobs = 0;                              // delivery jobs in flight
    std::shared_ptr<const LoadedMessage> loaded;  // while jobs run
    std::vector<RcptState> rcpts;
    bool held() const { return (quarantined && !released) || admin_hold; }
  };
  struct Segment {
    std::vector<std::string> ids;
    size_t open = 0;  // records not finished (held ones stay open)
  };
  struct Job {
    std::string id;
    std::vector<size_t> rcpts;  // indexes into Message::rcpts
    Destination dest;
  };
  struct Dest {
    size_t active = 0;
    size_t limit = 0;
    std::multimap<std::pair<int, uint64_t>, Job> waiting;  // (-priority, seq)
    int64_t down_until = 0;
    std::string down_reply;
  };

  static std::string encodeState(const Message& m);
  static bool decodeState(std::string_view text, Message* m);
  static const char* statusName(Status s);
  static bool isFinal(Status s) { return s == Status::kDelivered || s == Status::kFailed; }
  static bool hasDeferred(const Message& m);

  int64_t nowUnix() const;
  int priorityOf(const Message& m) const;
  // Adds a record to the in-memory queue (state from the store if any).
  void admit(const std::string& id, const SpoolMeta& meta, SpoolLocation loc);
  void admitIncoming();
  // Starts delivery of every message due now; returns recipient attempts queued.
  size_t dispatchDue();
  size_t dispatch(const std::string& id, Message& m);
  void pump();
  asio::awaitable<void> runJob(Job job, std::shared_ptr<const LoadedMessage> loaded);
  void applyResults(const std::string& id, Message& m, const Job& job,
                    std::vector<DeliveryResult> results);
  void jobDone(const std::string& id, Message& m);
  void persist(const std::string& id, const Message& m);
  void eraseDone(const std::string& id);
  void schedule(const std::string& id, Message& m);
  void unschedule(const std::string& id, const Message& m);
  void dropDrainedSegments();
  void updateCounts(const Message& m, int sign);
  void publishStats();
  void workerLoop();
  asio::awaitable<void> schedulerLoop();
  bool domainHeld(const std::string& address) const;

  Options options_;
  // The queue thread's loop; everything below mu_ is touched only on it
  // (or by the caller of recover()/runDue()/commandNow()).
  asio::io_context io_;
  asio::steady_timer wake_{io_};
  WorkerPool local_pool_;  // after io_: destroyed first, so no job posts into a dead loop

  // Shared with enqueue() and stats().
  mutable std::mutex mu_;
  std::deque<std::pair<SpoolMeta, SpoolLocation>> incoming_;
  QueueStats stats_;
  std::atomic<bool> stopping_{false};

  std::unordered_map<std::string, Message> messages_;
  std::map<uint64_t, Segment> segments_;
  std::set<std::pair<int64_t, std::string>> schedule_;  // (due, id) of open, unheld messages
  std::map<std::string, Dest> dests_;
  std::set<std::string> held_domains_;
  size_t active_ = 0;
  uint64_t job_seq_ = 0;
  size_t open_count_ = 0;      // QueueStats::messages
  size_t deferred_count_ = 0;  // QueueStats::deferred
  size_t held_count_ = 0;      // QueueStats::held
  std::thread worker_;
};

}  // namespace mxgate
