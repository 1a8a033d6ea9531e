#include "gateway/queue/queue_manager.h"

#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

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
  EXPECT_NE(state.find("r\tdeferred\t1\t1700000900\tb@d.org\t4.3.1 No space left on device\n"),
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

}  // namespace
}  // namespace mxgate
