// deliverToEndpoints over several hosts, and connection reuse.
#include "gateway/smtp_client/delivery.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gateway/smtp_client/client_testing.h"
#include "gateway/smtp_client/connection_cache.h"

namespace mxgate::smtp_client {
namespace {

using testing::ClientTest;
using testing::commandsStarting;
using testing::FakeSmtpServer;
using testing::kClose;

class DeliveryTest : public ClientTest {
 protected:
  void TearDown() override {
    cache.closeAll();
    ClientTest::TearDown();
  }
  DeliveryReport deliverTo(const std::vector<Endpoint>& eps, const OutboundMessage& m,
                           ConnectionCache* c) {
    auto fn = [&]() -> asio::awaitable<DeliveryReport> {
      co_return co_await deliverToEndpoints(eps, c, m, opts);
    };
    return run(fn());
  }
  DeliveryReport deliverCached(const OutboundMessage& m) {
    return deliverTo({endpoint()}, m, &cache);
  }
  // An endpoint where nothing listens.
  Endpoint deadEndpoint() {
    asio::ip::tcp::acceptor a(ctx, {asio::ip::make_address("127.0.0.1"), 0});
    uint16_t port = a.local_endpoint().port();
    return {"dead.test", asio::ip::make_address("127.0.0.1"), port};
  }
  static Endpoint endpointOf(const FakeSmtpServer& s, std::string name) {
    return {std::move(name), asio::ip::make_address("127.0.0.1"), s.port()};
  }

  ConnectionCache cache{ctx.get_executor()};
};

TEST_F(DeliveryTest, ReusesTheConnectionWithRsetPipelinedBeforeMail) {
  for (int i = 0; i < 3; ++i) {
    DeliveryReport rep = deliverCached(message({"a@example.com"}));
    ASSERT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();
  }
  ASSERT_EQ(server.connections(), 1u);
  const auto& rec = server.records[0];
  EXPECT_EQ(rec.messages.size(), 3u);
  EXPECT_EQ(commandsStarting(rec.commands, "RSET").size(), 2u);
  for (size_t i = 0; i < rec.commands.size(); ++i) {
    if (rec.commands[i] == "RSET") {
      EXPECT_TRUE(rec.commands.at(i + 1).starts_with("MAIL"));
      EXPECT_GE(rec.waiting[i], 3u) << "RSET, MAIL, RCPT and DATA in one write";
    }
  }
  EXPECT_EQ(cache.stats().reused, 2u);
  EXPECT_EQ(cache.idleCount(), 1u);
}

TEST_F(DeliveryTest, LockStepReuse) {
  server.extensions = {};
  EXPECT_TRUE(deliverCached(message({"a@example.com"})).allAccepted());
  EXPECT_TRUE(deliverCached(message({"a@example.com"})).allAccepted());
  ASSERT_EQ(server.connections(), 1u);
  const auto& cmds = server.records[0].commands;
  auto it = std::find(cmds.begin(), cmds.end(), "RSET");
  ASSERT_NE(it, cmds.end());
  EXPECT_EQ(server.records[0].waiting[static_cast<size_t>(it - cmds.begin())], 0u);
}

TEST_F(DeliveryTest, ConnectionClosedWhileIdleIsReplaced) {
  EXPECT_TRUE(deliverCached(message({"a@example.com"})).allAccepted());
  server.dropConnections();
  idle(100ms);
  DeliveryReport rep = deliverCached(message({"b@example.com"}));
  EXPECT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();
  EXPECT_EQ(server.connections(), 2u);
  EXPECT_EQ(cache.stats().stale, 1u);
  EXPECT_TRUE(rep.host_failures.empty());
}

TEST_F(DeliveryTest, ConnectionDyingAtReuseIsRetriedOnAFreshOne) {
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd == "RSET") return kClose;  // as if it had timed out just now
    return std::nullopt;
  };
  EXPECT_TRUE(deliverCached(message({"a@example.com"})).allAccepted());
  DeliveryReport rep = deliverCached(message({"b@example.com"}));
  EXPECT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();
  ASSERT_EQ(server.connections(), 2u);
  EXPECT_EQ(server.records[0].messages.size(), 1u);
  EXPECT_EQ(server.records[1].messages.size(), 1u);
  EXPECT_TRUE(rep.host_failures.empty());
}

TEST_F(DeliveryTest, Stale421AtReuseIsRetriedOnAFreshOne) {
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd == "RSET") return "421 4.4.2 fake.test Error: timeout exceeded";
    return std::nullopt;
  };
  EXPECT_TRUE(deliverCached(message({"a@example.com"})).allAccepted());
  EXPECT_TRUE(deliverCached(message({"b@example.com"})).allAccepted());
  EXPECT_EQ(server.connections(), 2u);
}

TEST_F(DeliveryTest, IdleConnectionsAreClosedWithQuit) {
  ConnectionCache quick(ctx.get_executor(), CacheOptions{.idle_timeout = 100ms});
  EXPECT_TRUE(deliverTo({endpoint()}, message({"a@example.com"}), &quick).allAccepted());
  EXPECT_EQ(quick.idleCount(), 1u);
  idle(500ms);
  EXPECT_EQ(quick.idleCount(), 0u);
  EXPECT_EQ(quick.stats().expired, 1u);
  EXPECT_EQ(server.records.at(0).commands.back(), "QUIT");
}

TEST_F(DeliveryTest, MessagesPerConnectionAreLimited) {
  ConnectionCache two(ctx.get_executor(), CacheOptions{.max_messages = 2});
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(deliverTo({endpoint()}, message({"a@example.com"}), &two).allAccepted());
  }
  idle(100ms);
  ASSERT_EQ(server.connections(), 3u);
  EXPECT_EQ(server.records[0].messages.size(), 2u);
  EXPECT_EQ(server.records[0].commands.back(), "QUIT");
}

TEST_F(DeliveryTest, ConnectionsWithOtherSettingsAreNotShared) {
  EXPECT_TRUE(deliverCached(message({"a@example.com"})).allAccepted());
  opts.helo_name = "other.test";
  EXPECT_TRUE(deliverCached(message({"a@example.com"})).allAccepted());
  EXPECT_EQ(server.connections(), 2u);
}

TEST_F(DeliveryTest, WithoutCacheEveryMessageHasItsConnection) {
  EXPECT_TRUE(deliverTo({endpoint()}, message({"a@example.com"}), nullptr).allAccepted());
  EXPECT_TRUE(deliverTo({endpoint()}, message({"a@example.com"}), nullptr).allAccepted());
  idle(100ms);
  EXPECT_EQ(server.connections(), 2u);
  EXPECT_EQ(server.records[0].commands.back(), "QUIT");
}

TEST_F(DeliveryTest, NextHostAfterAConnectionFailure) {
  DeliveryReport rep = deliverTo({deadEndpoint(), endpoint()}, message({"a@example.com"}), &cache);
  EXPECT_TRUE(rep.allAccepted());
  ASSERT_EQ(rep.host_failures.size(), 1u);
  EXPECT_NE(rep.host_failures[0].find("dead.test"), std::string::npos);
  EXPECT_NE(rep.host_failures[0].find("4.4.1"), std::string::npos);
  EXPECT_EQ(rep.rcpts[0].host, endpoint().label());
}

TEST_F(DeliveryTest, NextHostAfterAPermanentHostFailure) {
  FakeSmtpServer second(ctx);
  server.greeting = "554 5.3.2 not accepting mail";
  DeliveryReport rep = deliverTo({endpoint("first.test"), endpointOf(second, "second.test")},
                                 message({"a@example.com"}), &cache);
  EXPECT_TRUE(rep.allAccepted());
  EXPECT_EQ(second.connections(), 1u);
  ASSERT_EQ(rep.host_failures.size(), 1u);
  EXPECT_NE(rep.host_failures[0].find("554 5.3.2"), std::string::npos);
  second.stop();
}

TEST_F(DeliveryTest, TemporaryRecipientsGoToTheNextHostPermanentOnesDoNot) {
  FakeSmtpServer second(ctx);
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd == "RCPT TO:<later@example.com>") return "450 4.2.0 busy";
    if (cmd == "RCPT TO:<nobody@example.com>") return "550 5.1.1 no such user";
    return std::nullopt;
  };
  DeliveryReport rep =
      deliverTo({endpoint("first.test"), endpointOf(second, "second.test")},
                message({"ok@example.com", "later@example.com", "nobody@example.com"}), &cache);
  ASSERT_EQ(rep.rcpts.size(), 3u);
  EXPECT_EQ(rep.rcpts[0].code, 250);
  EXPECT_EQ(rep.rcpts[0].host, endpoint("first.test").label());
  EXPECT_EQ(rep.rcpts[1].code, 250);
  EXPECT_EQ(rep.rcpts[1].host, endpointOf(second, "second.test").label());
  EXPECT_EQ(rep.rcpts[2].code, 550);
  ASSERT_EQ(second.connections(), 1u);
  EXPECT_EQ(commandsStarting(second.records[0].commands, "RCPT"),
            std::vector<std::string>{"RCPT TO:<later@example.com>"});
  EXPECT_TRUE(rep.host_failures.empty());
  second.stop();
}

TEST_F(DeliveryTest, EveryHostFailing) {
  DeliveryReport rep = deliverTo({deadEndpoint(), deadEndpoint()},
                                 message({"a@example.com", "b@example.com"}), &cache);
  for (const SmtpReply& r : rep.rcpts) {
    EXPECT_EQ(r.outcome(), Outcome::kTemporary);
    EXPECT_EQ(r.enhanced, "4.4.1");
  }
  EXPECT_EQ(rep.host_failures.size(), 2u);
  EXPECT_EQ(deliverTo({}, message({"a@example.com"}), &cache).rcpts[0].enhanced, "4.4.4");
}

TEST_F(DeliveryTest, AnIdleConnectionToAnyHostGoesFirst) {
  FakeSmtpServer second(ctx);
  const Endpoint b = endpointOf(second, "second.test");
  EXPECT_TRUE(deliverTo({b}, message({"a@example.com"}), &cache).allAccepted());
  EXPECT_TRUE(deliverTo({endpoint(), b}, message({"a@example.com"}), &cache).allAccepted());
  EXPECT_EQ(server.connections(), 0u);
  EXPECT_EQ(second.connections(), 1u);
  EXPECT_EQ(second.records[0].messages.size(), 2u);
  second.stop();
}

}  // namespace
}  // namespace mxgate::smtp_client
