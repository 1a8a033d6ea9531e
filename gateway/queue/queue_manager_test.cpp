#include "gateway/queue/queue_manager.h"

#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "gateway/queue/maildir_agent.h"
#include "gateway/queue/queue_testing.h"

namespace mxgate {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::queueMeta;
using testing::spoolWrite;
using testing::TempDir;
using Kind = DeliveryResult::Kind;

// Answers per address (default: delivered) and records every call.
class FakeAgent : public DeliveryAgent {
 public:
  DeliveryResult deliver(const SpoolMeta& meta, std::string_view message,
                         const Recipient& rcpt) override {
    std::lock_guard lock(mu_);
    calls.push_back(meta.queue_id + ":" + rcpt.address);
    bodies.emplace_back(message);
    auto it = answers.find(rcpt.address);
    if (it == answers.end()) return {Kind::kDelivered, "2.0.0 ok"};
    return it->second;
  }
  std::map<std::string, DeliveryResult> answers;
  std::vector<std::string> calls;
  std::vector<std::string> bodies;

 private:
  std::mutex mu_;
};

class QueueManagerTest : public ::testing::Test {
 protected:
  QueueManagerTest()
      : segments_(tmp_.path() + "/segments"),
        store_(openMemoryStore()),
        now_(std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000))) {}

  QueueManager::Options options(DeliveryAgent* agent) {
    QueueManager::Options o;
    o.segments_dir = segments_;
    o.store = store_.get();
    o.local = agent;
    o.current_segment = [this] { return current_; };
    o.clock = [this] { return now_; };
    return o;
  }
  // One record per segment, so segment deletion can be observed.
  std::unique_ptr<Spool> openSpool() {
    return std::make_unique<Spool>(Spool::Options{segments_, 1, nullptr});
  }
  size_t segmentCount() { return listSegments(segments_).size(); }

  TempDir tmp_;
  std::string segments_;
  std::unique_ptr<KvStore> store_;
  std::chrono::system_clock::time_point now_;
  uint64_t current_ = UINT64_MAX;
};

TEST_F(QueueManagerTest, SplitsRecipientsAndRetriesDeferredOnSchedule) {
  auto spool = openSpool();
  FakeAgent agent;
  agent.answers["b@d.org"] = {Kind::kDeferred, "4.3.1 No space left on device"};
  QueueManager qm(options(&agent));
  qm.recover();
  SpoolMeta meta = queueMeta("Q1", {"a@d.org", "b@d.org"});
  qm.enqueue(meta, spoolWrite(*spool, meta, "Subject: x\r\n\r\nhello\r\n"));

  EXPECT_EQ(qm.runDue(), 2u);
  EXPECT_EQ(agent.bodies.at(0), "Subject: x\r\n\r\nhello\r\n");
  std::string state = store_->get(kQueueBucket, "Q1").value();
  EXPECT_NE(state.find("r\tdelivered\t1\t"), std::string::npos) << state;
  EXPECT_NE(state.find("r\tdeferred\t1\t1700000900\tb@d.org\t4.3.1 No space left on device\t0\n"),
            std::string::npos)
      << state;
  EXPECT_EQ(qm.stats().messages, 1u);
  EXPECT_EQ(qm.stats().deferred, 1u);

  now_ += 14min;
  EXPECT_EQ(qm.runDue(), 0u);
  now_ += 1min;
  agent.answers.erase("b@d.org");
  EXPECT_EQ(qm.runDue(), 1u);
  EXPECT_EQ(agent.calls, (std::vector<std::string>{"Q1:a@d.org", "Q1:b@d.org", "Q1:b@d.org"}));
  EXPECT_EQ(qm.stats().messages, 0u);
  EXPECT_EQ(qm.stats().deferred, 0u);
}

TEST_F(QueueManagerTest, SecondDeferralWaitsForTheNextStep) {
  auto spool = openSpool();
  FakeAgent agent;
  agent.answers["b@d.org"] = {Kind::kDeferred, "4.0.0 later"};
  QueueManager qm(options(&agent));
  qm.recover();
  SpoolMeta meta = queueMeta("Q1", {"b@d.org"});
  qm.enqueue(meta, spoolWrite(*spool, meta, "x\r\n"));
  EXPECT_EQ(qm.runDue(), 1u);
  now_ += 15min;
  EXPECT_EQ(qm.runDue(), 1u);
  now_ += 29min;
  EXPECT_EQ(qm.runDue(), 0u);
  now_ += 1min;
  EXPECT_EQ(qm.runDue(), 1u);
}

TEST_F(QueueManagerTest, RestartDeliversOnlyWhatIsLeft) {
  std::string root = tmp_.path() + "/mail";
  MaildirAgent maildir({root, 0, "h"});
  {
    auto spool = openSpool();
    for (std::string id : {"Q1", "Q2"}) {
      SpoolMeta meta = queueMeta(id, {"a@d.org", "b@d.org"});
      spoolWrite(*spool, meta, "body of " + id + "\r\n");
    }
  }
  // First run: b@d.org cannot be delivered (disk full, say).
  class HalfAgent : public DeliveryAgent {
   public:
    explicit HalfAgent(DeliveryAgent* real) : real_(real) {}
    DeliveryResult deliver(const SpoolMeta& m, std::string_view msg, const Recipient& r) override {
      if (r.address == "b@d.org") return {Kind::kDeferred, "4.3.1 No space left on device"};
      return real_->deliver(m, msg, r);
    }

   private:
    DeliveryAgent* real_;
  } half(&maildir);
  {
    QueueManager qm(options(&half));
    qm.recover();
    EXPECT_EQ(qm.runDue(), 4u);
  }
  auto count = [&](const std::string& user) {
    fs::path dir = fs::path(root) / "d.org" / user / "Maildir" / "new";
    return fs::exists(dir) ? std::distance(fs::directory_iterator(dir), fs::directory_iterator())
                           : 0;
  };
  EXPECT_EQ(count("a"), 2);
  EXPECT_EQ(count("b"), 0);

  // Restart with the real agent, driven by the worker thread this time.
  now_ += 15min;
  QueueManager qm(options(&maildir));
  qm.start();
  for (int i = 0; i < 500 && count("b") < 2; ++i) std::this_thread::sleep_for(10ms);
  for (int i = 0; i < 500 && qm.stats().messages > 0; ++i) std::this_thread::sleep_for(10ms);
  qm.stop();
  EXPECT_EQ(count("a"), 2);
  EXPECT_EQ(count("b"), 2);
  EXPECT_EQ(qm.stats().messages, 0u);
  // Both segments are finished and below the current one: gone, with their keys.
  EXPECT_EQ(segmentCount(), 0u);
  EXPECT_FALSE(store_->get(kQueueBucket, "Q1"));
}

TEST_F(QueueManagerTest, QuarantinedRecordsAreHeld) {
  {
    auto spool = openSpool();
    spoolWrite(*spool, queueMeta("Q1", {"a@d.org"}, "quarantine"), "x\r\n");
  }
  FakeAgent agent;
  QueueManager qm(options(&agent));
  qm.recover();
  EXPECT_EQ(qm.runDue(), 0u);
  EXPECT_TRUE(agent.calls.empty());
  EXPECT_EQ(qm.stats().held, 1u);
  EXPECT_EQ(qm.stats().messages, 0u);
  EXPECT_EQ(segmentCount(), 1u);
}

TEST_F(QueueManagerTest, FinishedSegmentDeletedOnlyBelowCurrent) {
  auto spool = openSpool();
  FakeAgent agent;
  QueueManager qm(options(&agent));
  qm.recover();
  SpoolMeta meta = queueMeta("Q1", {"a@d.org"});
  SpoolLocation loc = spoolWrite(*spool, meta, "x\r\n");
  qm.enqueue(meta, loc);
  current_ = loc.segment;  // the spool may still append to it
  EXPECT_EQ(qm.runDue(), 1u);
  EXPECT_EQ(segmentCount(), 1u);
  EXPECT_TRUE(store_->get(kQueueBucket, "Q1"));

  current_ = loc.segment + 1;
  qm.runDue();
  EXPECT_EQ(segmentCount(), 0u);
  EXPECT_FALSE(store_->get(kQueueBucket, "Q1"));
}

TEST_F(QueueManagerTest, SegmentWithAnUnannouncedRecordIsKept) {
  Spool spool(Spool::Options{segments_, 1 << 20, nullptr});  // both records in one segment
  FakeAgent agent;
  QueueManager qm(options(&agent));
  qm.recover();
  SpoolMeta q1 = queueMeta("Q1", {"a@d.org"});
  SpoolLocation loc = spoolWrite(spool, q1, "x\r\n");
  // Q2 is spooled, but its enqueue() has not arrived yet.
  SpoolLocation loc2 = spoolWrite(spool, queueMeta("Q2", {"b@d.org"}), "y\r\n");
  ASSERT_EQ(loc.segment, loc2.segment);
  qm.enqueue(q1, loc);
  current_ = loc.segment + 1;
  EXPECT_EQ(qm.runDue(), 1u);
  EXPECT_EQ(segmentCount(), 1u);
  EXPECT_EQ(qm.stats().messages, 1u);
  EXPECT_EQ(qm.runDue(), 1u);  // delivers Q2, then drops the segment
  EXPECT_EQ(agent.calls, (std::vector<std::string>{"Q1:a@d.org", "Q2:b@d.org"}));
  EXPECT_EQ(segmentCount(), 0u);
}

TEST_F(QueueManagerTest, DeferralBecomesFailureAfterMaxLifetime) {
  auto spool = openSpool();
  FakeAgent agent;
  agent.answers["a@d.org"] = {Kind::kDeferred, "4.2.2 mailbox full"};
  auto o = options(&agent);
  o.max_lifetime = 2h;
  current_ = 0;  // keep the segment and its state to look at
  QueueManager qm(o);
  qm.recover();
  SpoolMeta meta = queueMeta("Q1", {"a@d.org"});
  meta.received_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now_.time_since_epoch()).count();
  qm.enqueue(meta, spoolWrite(*spool, meta, "x\r\n"));
  int attempts = 0;
  for (int i = 0; i < 5; ++i) {
    attempts += static_cast<int>(qm.runDue());
    now_ += 1h;
  }
  // 0 (deferred, +15m), 1h (deferred, +30m), 2h: expired.
  EXPECT_EQ(attempts, 3);
  std::string state = store_->get(kQueueBucket, "Q1").value();
  EXPECT_NE(state.find("r\tfailed\t3\t"), std::string::npos) << state;
  EXPECT_NE(state.find("5.4.7"), std::string::npos) << state;
  EXPECT_EQ(qm.stats().messages, 0u);
}

TEST_F(QueueManagerTest, StaleKeysOfVanishedSegmentsAreErased) {
  store_->put(kQueueBucket, "GONE", "q1\t99\t16\t1700000000\nr\tdelivered\t1\t0\ta@d.org\tok\n");
  store_->put(kQueueBucket, "JUNK", "not a state");
  FakeAgent agent;
  QueueManager qm(options(&agent));
  qm.recover();
  EXPECT_FALSE(store_->get(kQueueBucket, "GONE"));
  EXPECT_FALSE(store_->get(kQueueBucket, "JUNK"));
}

TEST_F(QueueManagerTest, DuplicateEnqueueIsIgnored) {
  auto spool = openSpool();
  FakeAgent agent;
  QueueManager qm(options(&agent));
  SpoolMeta meta = queueMeta("Q1", {"a@d.org"});
  SpoolLocation loc = spoolWrite(*spool, meta, "x\r\n");
  qm.recover();  // finds Q1 in the spool
  qm.enqueue(meta, loc);
  EXPECT_EQ(qm.runDue(), 1u);
  EXPECT_EQ(agent.calls.size(), 1u);
}

// An asynchronous transport: answers per address after a short wait, and
// records the jobs it saw and how many ran at once.
class FakeTransport : public Transport {
 public:
  asio::awaitable<std::vector<DeliveryResult>> deliver(const TransportJob& job) override {
    std::string line = job.message->meta.queue_id + ":" + job.domain + ":";
    for (const Recipient* r : job.rcpts) line += r->address + ",";
    jobs.push_back(line);
    max_active = std::max(max_active, ++active);
    asio::steady_timer t(co_await asio::this_coro::executor, 5ms);
    co_await t.async_wait(asio::use_awaitable);
    --active;
    std::vector<DeliveryResult> out;
    for (const Recipient* r : job.rcpts) {
      auto it = answers.find(r->address);
      out.push_back(it == answers.end() ? DeliveryResult{Kind::kDelivered, "2.0.0 ok"}
                                        : it->second);
    }
    co_return out;
  }
  std::map<std::string, DeliveryResult> answers;
  std::vector<std::string> jobs;
  int active = 0;
  int max_active = 0;
};

// Every domain but local.test goes to the transport, one destination per domain.
QueueManager::Options withTransport(QueueManager::Options o, FakeTransport* t) {
  o.route = [t](const std::string& domain, int) {
    if (domain == "local.test") return Destination{"local", nullptr, nullptr, {}};
    return Destination{"mx:" + domain, t, nullptr, {}};
  };
  return o;
}

TEST_F(QueueManagerTest, OneJobPerDestinationAndRecipientsSplitAcrossRoutes) {
  auto spool = openSpool();
  FakeAgent agent;
  FakeTransport transport;
  QueueManager qm(withTransport(options(&agent), &transport));
  qm.recover();
  SpoolMeta meta = queueMeta("Q1", {"a@x.test", "b@local.test", "c@x.test", "d@y.test"});
  qm.enqueue(meta, spoolWrite(*spool, meta, "x\r\n"));
  EXPECT_EQ(qm.runDue(), 4u);
  std::sort(transport.jobs.begin(), transport.jobs.end());
  EXPECT_EQ(transport.jobs,
            (std::vector<std::string>{"Q1:x.test:a@x.test,c@x.test,", "Q1:y.test:d@y.test,"}));
  EXPECT_EQ(agent.calls, (std::vector<std::string>{"Q1:b@local.test"}));
  EXPECT_EQ(qm.stats().messages, 0u);
}

TEST_F(QueueManagerTest, ConcurrencyIsLimitedPerDestinationAndOverall) {
  auto spool = openSpool();
  FakeAgent agent;
  FakeTransport transport;
  auto o = withTransport(options(&agent), &transport);
  o.destination_concurrency = 2;
  o.max_concurrency = 3;
  QueueManager qm(o);
  qm.recover();
  for (int i = 0; i < 6; ++i) {
    SpoolMeta meta = queueMeta("S" + std::to_string(i), {"a@same.test"});
    qm.enqueue(meta, spoolWrite(*spool, meta, "x\r\n"));
  }
  qm.runDue();
  EXPECT_EQ(transport.max_active, 2);
  transport.max_active = 0;
  for (int i = 0; i < 6; ++i) {
    SpoolMeta meta = queueMeta("D" + std::to_string(i), {"a@d" + std::to_string(i) + ".test"});
    qm.enqueue(meta, spoolWrite(*spool, meta, "x\r\n"));
  }
  qm.runDue();
  EXPECT_EQ(transport.max_active, 3);
  EXPECT_EQ(transport.jobs.size(), 12u);
}

TEST_F(QueueManagerTest, HigherPriorityGoesFirstAndRetriesDropPriority) {
  auto spool = openSpool();
  FakeAgent agent;
  FakeTransport transport;
  auto o = withTransport(options(&agent), &transport);
  o.max_concurrency = 1;
  o.priority.sender_domains["vip.test"] = 9;
  o.priority.sender_domains["bulk.test"] = 2;
  QueueManager qm(o);
  qm.recover();
  for (auto [id, from] :
       {std::pair{"LOW", "bulk.test"}, {"MID", "example.org"}, {"TOP", "vip.test"}}) {
    SpoolMeta meta = queueMeta(id, {"a@x.test"});
    meta.envelope.mail_from = std::string("s@") + from;
    qm.enqueue(meta, spoolWrite(*spool, meta, "x\r\n"));
  }
  qm.runDue();
  EXPECT_EQ(transport.jobs,
            (std::vector<std::string>{"TOP:x.test:a@x.test,", "MID:x.test:a@x.test,",
                                      "LOW:x.test:a@x.test,"}));
}

TEST_F(QueueManagerTest, UnreachableDestinationIsBackedOffOthersGoOn) {
  auto spool = openSpool();
  FakeAgent agent;
  FakeTransport transport;
  DeliveryResult down{Kind::kDeferred, "4.4.1 connection refused"};
  down.destination_down = true;
  transport.answers["a@down.test"] = down;
  transport.answers["b@down.test"] = down;
  auto o = withTransport(options(&agent), &transport);
  o.max_concurrency = 1;
  QueueManager qm(o);
  qm.recover();
  for (auto [id, rcpt] :
       {std::pair{"Q1", "a@down.test"}, {"Q2", "b@down.test"}, {"Q3", "c@up.test"}}) {
    SpoolMeta meta = queueMeta(id, {rcpt});
    qm.enqueue(meta, spoolWrite(*spool, meta, "x\r\n"));
  }
  EXPECT_EQ(qm.runDue(), 3u);
  // Only one connection attempt to the dead destination; the other
  // recipient was deferred with its reply, and up.test was delivered.
  size_t to_down =
      std::count_if(transport.jobs.begin(), transport.jobs.end(),
                    [](const std::string& j) { return j.find("down.test") != std::string::npos; });
  EXPECT_EQ(to_down, 1u);
  EXPECT_NE(std::find(transport.jobs.begin(), transport.jobs.end(), "Q3:up.test:c@up.test,"),
            transport.jobs.end());
  EXPECT_EQ(QueueManager::loadDelivery(*store_, "Q2").at(0).last_reply, "4.4.1 connection refused");
  EXPECT_EQ(qm.stats().deferred, 2u);
}

TEST_F(QueueManagerTest, DnsErrorsFailAfterTheLimit) {
  auto spool = openSpool();
  FakeAgent agent;
  FakeTransport transport;
  DeliveryResult nx{Kind::kDeferred, "4.4.3 example.invalid: domain not found"};
  nx.dns_error = true;
  transport.answers["a@example.invalid"] = nx;
  std::vector<std::string> failed;
  auto o = withTransport(options(&agent), &transport);
  o.on_failed = [&](const LoadedMessage& m, const std::vector<size_t>& idx,
                    const std::vector<DeliveryResult>& res) {
    failed.push_back(m.meta.queue_id + ":" + m.meta.envelope.rcpts.at(idx.at(0)).address + ":" +
                     res.at(0).reply);
  };
  current_ = 0;
  QueueManager qm(o);
  qm.recover();
  SpoolMeta meta = queueMeta("Q1", {"a@example.invalid"});
  qm.enqueue(meta, spoolWrite(*spool, meta, "x\r\n"));
  EXPECT_EQ(qm.runDue(), 1u);
  EXPECT_TRUE(failed.empty());
  now_ += 15min;
  EXPECT_EQ(qm.runDue(), 1u);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].rfind("Q1:a@example.invalid:5.4.4 ", 0), 0u) << failed[0];
  EXPECT_EQ(qm.stats().messages, 0u);
}

TEST_F(QueueManagerTest, AdminHoldReleaseDeleteAndFlush) {
  auto spool = openSpool();
  FakeAgent agent;
  agent.answers["later@d.org"] = {Kind::kDeferred, "4.0.0 later"};
  current_ = 0;
  QueueManager qm(options(&agent));
  qm.recover();
  for (auto [id, rcpt] : {std::pair{"H", "a@d.org"}, {"F", "later@d.org"}, {"X", "later@d.org"}}) {
    SpoolMeta meta = queueMeta(id, {rcpt});
    qm.enqueue(meta, spoolWrite(*spool, meta, "x\r\n"));
  }
  qm.runDue();  // F and X deferred; H delivered
  EXPECT_EQ(qm.commandNow("hold H"), "error no queued message H");
  EXPECT_EQ(qm.commandNow("hold F"), "ok F held");
  EXPECT_EQ(qm.stats().held, 1u);
  EXPECT_EQ(QueueManager::loadFlags(*store_, "F"), "h");
  EXPECT_EQ(qm.commandNow("flush"), "ok 1 recipient(s) due now");  // X only: F is held
  agent.answers.erase("later@d.org");
  EXPECT_EQ(qm.runDue(), 1u);
  EXPECT_EQ(qm.commandNow("release F"), "ok F released");
  EXPECT_EQ(qm.commandNow("flush F"), "ok 1 recipient(s) due now");
  EXPECT_EQ(qm.runDue(), 1u);
  EXPECT_EQ(qm.stats().messages, 0u);
  EXPECT_EQ(qm.commandNow("frobnicate"), "error unknown queue command \"frobnicate\"");
}

TEST_F(QueueManagerTest, DeleteDropsAMessageWithoutDelivery) {
  auto spool = openSpool();
  FakeAgent agent;
  agent.answers["a@d.org"] = {Kind::kDeferred, "4.0.0 later"};
  current_ = 0;
  QueueManager qm(options(&agent));
  qm.recover();
  SpoolMeta meta = queueMeta("Q1", {"a@d.org"});
  qm.enqueue(meta, spoolWrite(*spool, meta, "x\r\n"));
  qm.runDue();
  EXPECT_EQ(qm.commandNow("delete Q1"), "ok Q1 deleted");
  EXPECT_EQ(QueueManager::loadDelivery(*store_, "Q1").at(0).status, "failed");
  now_ += 1h;
  EXPECT_EQ(qm.runDue(), 0u);
  EXPECT_EQ(qm.stats().messages, 0u);
}

TEST_F(QueueManagerTest, ReleasedQuarantineIsDeliveredAndStaysReleasedAfterRestart) {
  {
    auto spool = openSpool();
    spoolWrite(*spool, queueMeta("Q1", {"a@d.org", "b@d.org"}, "quarantine"), "x\r\n");
  }
  FakeAgent agent;
  agent.answers["b@d.org"] = {Kind::kDeferred, "4.0.0 later"};
  current_ = 0;
  {
    QueueManager qm(options(&agent));
    qm.recover();
    EXPECT_EQ(qm.commandNow("release Q1"), "ok Q1 released");
    EXPECT_EQ(qm.runDue(), 2u);
  }
  QueueManager qm(options(&agent));
  qm.recover();
  EXPECT_EQ(qm.stats().held, 0u);
  EXPECT_EQ(qm.stats().messages, 1u);
}

TEST_F(QueueManagerTest, HeldDomainWaitsUntilReleased) {
  auto spool = openSpool();
  FakeAgent agent;
  FakeTransport transport;
  current_ = 0;
  QueueManager qm(withTransport(options(&agent), &transport));
  qm.recover();
  EXPECT_EQ(qm.commandNow("hold-domain Primary.test"), "ok primary.test held");
  SpoolMeta meta = queueMeta("Q1", {"a@primary.test", "b@other.test"});
  qm.enqueue(meta, spoolWrite(*spool, meta, "x\r\n"));
  EXPECT_EQ(qm.runDue(), 1u);
  EXPECT_EQ(transport.jobs, (std::vector<std::string>{"Q1:other.test:b@other.test,"}));
  now_ += 24h;
  EXPECT_EQ(qm.runDue(), 0u);
  EXPECT_EQ(qm.commandNow("holds"), "ok 1 domain(s) held\nprimary.test");
  EXPECT_EQ(qm.commandNow("release-domain primary.test"), "ok primary.test released");
  EXPECT_EQ(qm.runDue(), 1u);
  EXPECT_EQ(qm.stats().messages, 0u);
}

TEST_F(QueueManagerTest, WorkerDeliversManyMessagesConcurrentlyToMaildirs) {
  std::string root = tmp_.path() + "/mail";
  MaildirAgent maildir({root, 0, "h"});
  Spool spool(Spool::Options{segments_, 64 << 10, nullptr});
  current_ = UINT64_MAX;
  auto o = options(&maildir);
  o.current_segment = [&spool] { return spool.currentSegment(); };
  QueueManager qm(o);
  qm.start();
  constexpr int kMessages = 300;
  std::thread producer([&] {
    for (int i = 0; i < kMessages; ++i) {
      SpoolMeta meta = queueMeta("M" + std::to_string(i), {"u" + std::to_string(i % 7) + "@d.org"});
      qm.enqueue(meta, spoolWrite(spool, meta, std::string(2000, 'x') + "\r\n"));
    }
  });
  producer.join();
  for (int i = 0; i < 1000; ++i) {
    auto st = qm.stats();
    if (st.messages == 0 && st.active == 0) break;
    std::this_thread::sleep_for(10ms);
  }
  qm.stop();
  size_t files = 0;
  for (int u = 0; u < 7; ++u) {
    fs::path dir = fs::path(root) / "d.org" / ("u" + std::to_string(u)) / "Maildir" / "new";
    files += std::distance(fs::directory_iterator(dir), fs::directory_iterator());
  }
  EXPECT_EQ(files, static_cast<size_t>(kMessages));
}

}  // namespace
}  // namespace mxgate
