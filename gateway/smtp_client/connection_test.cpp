#include "gateway/smtp_client/connection.h"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "gateway/smtp_client/client_testing.h"

namespace mxgate::smtp_client {
namespace {

using testing::ClientTest;
using testing::commandsStarting;
using testing::kClose;
using testing::kHang;

class SmtpConnectionTest : public ClientTest {};

TEST_F(SmtpConnectionTest, PipelinedTransaction) {
  OutboundMessage m = message({"a@example.com", "b@example.com"}, "Subject: x\r\n\r\n.dot\nend");
  DeliveryReport rep = openAndSend(m);
  ASSERT_EQ(rep.rcpts.size(), 2u);
  EXPECT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();
  EXPECT_EQ(rep.rcpts[0].text, "Ok: queued as FAKE");
  EXPECT_EQ(rep.rcpts[0].stage, Stage::kDot);
  EXPECT_EQ(rep.rcpts[0].host, "localhost[127.0.0.1]:" + std::to_string(server.port()));
  ASSERT_EQ(server.connections(), 1u);
  const auto& rec = server.records[0];
  const std::string size = std::to_string(m.byteSize());
  EXPECT_EQ(rec.commands,
            (std::vector<std::string>{
                "EHLO client.test", "MAIL FROM:<sender@example.org> SIZE=" + size,
                "RCPT TO:<a@example.com>", "RCPT TO:<b@example.com>", "DATA", "QUIT"}));
  // MAIL, both RCPTs and DATA came in one write: behind MAIL, three lines waited.
  EXPECT_EQ(rec.waiting[1], 3u);
  ASSERT_EQ(rec.messages.size(), 1u);
  EXPECT_EQ(rec.messages[0], "Subject: x\r\n\r\n..dot\r\nend\r\n.\r\n");
  EXPECT_TRUE(last_caps.pipelining);
  EXPECT_EQ(last_caps.size_limit, 10000000u);
}

TEST_F(SmtpConnectionTest, LockStepWithoutPipelining) {
  server.extensions = {"8BITMIME"};
  DeliveryReport rep = openAndSend(message({"a@example.com", "b@example.com"}));
  EXPECT_TRUE(rep.allAccepted());
  const auto& rec = server.records.at(0);
  EXPECT_EQ(rec.commands.at(1), "MAIL FROM:<sender@example.org>") << "no SIZE= unless offered";
  for (size_t i = 0; i < rec.waiting.size(); ++i) {
    EXPECT_EQ(rec.waiting[i], 0u) << "command " << rec.commands[i] << " was pipelined";
  }
}

TEST_F(SmtpConnectionTest, FallsBackToHeloWhenEhloIsRefused) {
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd.starts_with("EHLO")) return "502 5.5.2 what?";
    return std::nullopt;
  };
  OutboundMessage m = message({"a@example.com"});
  m.envid = "abc";
  m.rcpts[0].notify = "SUCCESS";
  DeliveryReport rep = openAndSend(m);
  EXPECT_TRUE(rep.allAccepted());
  const auto& cmds = server.records.at(0).commands;
  ASSERT_GE(cmds.size(), 3u);
  EXPECT_EQ(cmds[1], "HELO client.test");
  EXPECT_EQ(cmds[2], "MAIL FROM:<sender@example.org>") << "no extensions after HELO";
  EXPECT_EQ(commandsStarting(cmds, "RCPT"), std::vector<std::string>{"RCPT TO:<a@example.com>"});
  EXPECT_FALSE(last_caps.esmtp);
}

TEST_F(SmtpConnectionTest, RefusedHeloToo) {
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd.starts_with("EHLO") || cmd.starts_with("HELO")) return "550 5.7.1 go away";
    return std::nullopt;
  };
  SmtpReply failure;
  openAndSend(message({"a@example.com"}), &failure);
  EXPECT_EQ(failure.code, 550);
  EXPECT_TRUE(failure.host_level);
  EXPECT_EQ(failure.outcome(), Outcome::kPermanent);
}

TEST_F(SmtpConnectionTest, PerRecipientReplies) {
  for (bool pipelining : {true, false}) {
    SCOPED_TRACE(pipelining ? "pipelining" : "lock-step");
    server.extensions =
        pipelining ? std::vector<std::string>{"PIPELINING"} : std::vector<std::string>{};
    server.reply = [](const std::string& cmd) -> std::optional<std::string> {
      if (cmd == "RCPT TO:<later@example.com>") return "450 4.2.0 mailbox busy";
      if (cmd == "RCPT TO:<nobody@example.com>") return "550 5.1.1 no such user";
      return std::nullopt;
    };
    DeliveryReport rep =
        openAndSend(message({"ok@example.com", "later@example.com", "nobody@example.com"}));
    ASSERT_EQ(rep.rcpts.size(), 3u);
    EXPECT_EQ(rep.rcpts[0].code, 250);
    EXPECT_EQ(rep.rcpts[0].stage, Stage::kDot);
    EXPECT_EQ(rep.rcpts[1].code, 450);
    EXPECT_EQ(rep.rcpts[1].enhanced, "4.2.0");
    EXPECT_EQ(rep.rcpts[1].outcome(), Outcome::kTemporary);
    EXPECT_FALSE(rep.rcpts[1].host_level);
    EXPECT_EQ(rep.rcpts[2].code, 550);
    EXPECT_EQ(rep.rcpts[2].text, "no such user");
    EXPECT_EQ(rep.rcpts[2].stage, Stage::kRcpt);
    EXPECT_EQ(rep.count(Outcome::kAccepted), 1u);
    EXPECT_EQ(server.records.back().messages.size(), 1u);
  }
}

TEST_F(SmtpConnectionTest, NoDataWhenEveryRecipientIsRefused) {
  server.extensions = {};
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd.starts_with("RCPT")) return "550 5.1.1 no";
    return std::nullopt;
  };
  DeliveryReport rep = openAndSend(message({"a@example.com", "b@example.com"}));
  EXPECT_EQ(rep.count(Outcome::kPermanent), 2u);
  EXPECT_TRUE(commandsStarting(server.records.at(0).commands, "DATA").empty());
}

TEST_F(SmtpConnectionTest, PipelinedDataAfterRefusedRecipientsIsIgnored) {
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd.starts_with("RCPT")) return "550 5.1.1 no";
    if (cmd == "DATA") return "554 5.5.1 no valid recipients";
    return std::nullopt;
  };
  DeliveryReport rep = openAndSend(message({"a@example.com"}));
  EXPECT_EQ(rep.rcpts.at(0).code, 550) << "the RCPT reply counts, not DATA's";
  EXPECT_TRUE(last_usable);
}

TEST_F(SmtpConnectionTest, RefusedMailFrom) {
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd.starts_with("MAIL")) return "553 5.1.8 bad sender domain";
    if (cmd.starts_with("RCPT") || cmd == "DATA") return "503 5.5.1 need MAIL";
    return std::nullopt;
  };
  DeliveryReport rep = openAndSend(message({"a@example.com", "b@example.com"}));
  for (const SmtpReply& r : rep.rcpts) {
    EXPECT_EQ(r.code, 553);
    EXPECT_EQ(r.stage, Stage::kMail);
    EXPECT_FALSE(r.host_level);
  }
}

TEST_F(SmtpConnectionTest, DataReplies) {
  struct Case {
    const char* data;  // reply to DATA
    const char* dot;   // reply to the end of data
    int code;
    Stage stage;
  };
  for (const Case& c : {Case{"451 4.3.0 try later", "", 451, Stage::kData},
                        Case{"554 5.6.0 no", "", 554, Stage::kData},
                        Case{"", "452 4.3.1 disk full", 452, Stage::kDot},
                        Case{"", "552 5.3.4 too big", 552, Stage::kDot}}) {
    SCOPED_TRACE(std::string(c.data) + c.dot);
    server.reply = [&c](const std::string& cmd) -> std::optional<std::string> {
      if (cmd == "DATA" && *c.data) return std::string(c.data);
      if (cmd == "." && *c.dot) return std::string(c.dot);
      return std::nullopt;
    };
    DeliveryReport rep = openAndSend(message({"a@example.com", "b@example.com"}));
    for (const SmtpReply& r : rep.rcpts) {
      EXPECT_EQ(r.code, c.code);
      EXPECT_EQ(r.stage, c.stage);
    }
  }
}

TEST_F(SmtpConnectionTest, Reply421MidSessionIsTemporaryForEveryone) {
  server.extensions = {};
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd == "RCPT TO:<b@example.com>") return "421 4.3.2 shutting down";
    return std::nullopt;
  };
  DeliveryReport rep = openAndSend(message({"a@example.com", "b@example.com", "c@example.com"}));
  for (const SmtpReply& r : rep.rcpts) {
    EXPECT_EQ(r.code, 421);
    EXPECT_TRUE(r.host_level);
    EXPECT_EQ(r.outcome(), Outcome::kTemporary);
  }
  EXPECT_FALSE(last_usable);
  EXPECT_TRUE(commandsStarting(server.records.at(0).commands, "DATA").empty());
}

TEST_F(SmtpConnectionTest, ConnectionDroppedMidSession) {
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd == ".") return kClose;
    return std::nullopt;
  };
  DeliveryReport rep = openAndSend(message({"a@example.com"}));
  const SmtpReply& r = rep.rcpts.at(0);
  EXPECT_TRUE(r.local);
  EXPECT_EQ(r.enhanced, "4.4.2");
  EXPECT_EQ(r.stage, Stage::kDot);
  EXPECT_TRUE(r.host_level);
  EXPECT_NE(r.text.find("closed by the server"), std::string::npos) << r.text;
}

TEST_F(SmtpConnectionTest, RefusesMessagesAboveTheServersSize) {
  server.extensions = {"SIZE 100", "PIPELINING"};
  DeliveryReport rep = openAndSend(message({"a@example.com"}, std::string(200, 'x')));
  const SmtpReply& r = rep.rcpts.at(0);
  EXPECT_EQ(r.enhanced, "5.3.4");
  EXPECT_EQ(r.outcome(), Outcome::kPermanent);
  EXPECT_TRUE(r.host_level);
  EXPECT_TRUE(commandsStarting(server.records.at(0).commands, "MAIL").empty());
  EXPECT_TRUE(last_usable);
}

TEST_F(SmtpConnectionTest, EightBitNeeds8BitMime) {
  server.extensions = {"PIPELINING"};
  OutboundMessage m = message({"a@example.com"}, "Subject: caf\xc3\xa9\r\n\r\n\xe2\x82\xac\r\n");
  m.eight_bit = true;
  DeliveryReport rep = openAndSend(m);
  EXPECT_EQ(rep.rcpts.at(0).enhanced, "5.6.3");
  EXPECT_EQ(rep.rcpts.at(0).outcome(), Outcome::kPermanent);
  EXPECT_TRUE(commandsStarting(server.records.at(0).commands, "MAIL").empty());

  server.extensions = {"PIPELINING", "8BITMIME"};
  rep = openAndSend(m);
  EXPECT_TRUE(rep.allAccepted());
  EXPECT_EQ(commandsStarting(server.records.at(1).commands, "MAIL").at(0),
            "MAIL FROM:<sender@example.org> BODY=8BITMIME");
  EXPECT_EQ(server.records.at(1).messages.at(0), std::string(m.parts[0]) + ".\r\n");
}

TEST_F(SmtpConnectionTest, NonAsciiAddressesNeedSmtpUtf8) {
  OutboundMessage m = message({"j\xc3\xb6rg@example.com"});
  DeliveryReport rep = openAndSend(m);
  EXPECT_EQ(rep.rcpts.at(0).enhanced, "5.6.7");
  server.extensions = {"SMTPUTF8", "8BITMIME"};
  rep = openAndSend(m);
  EXPECT_TRUE(rep.allAccepted());
  EXPECT_EQ(commandsStarting(server.records.at(1).commands, "MAIL").at(0),
            "MAIL FROM:<sender@example.org> SMTPUTF8");
}

TEST_F(SmtpConnectionTest, DsnParametersOnlyWhenOffered) {
  OutboundMessage m = message({"a@example.com", "b@example.com"});
  m.ret = "hdrs";
  m.envid = "QQ314159";
  m.rcpts[0].notify = "SUCCESS,FAILURE";
  m.rcpts[0].orcpt = "rfc822;a+2Bx@example.com";
  m.rcpts[1].notify = "NEVER";
  m.rcpts[1].orcpt = "bad value";  // not xtext: left out
  DeliveryReport rep = openAndSend(m);
  EXPECT_TRUE(rep.allAccepted());
  const auto& cmds = server.records.at(0).commands;
  EXPECT_EQ(commandsStarting(cmds, "MAIL").at(0),
            "MAIL FROM:<sender@example.org> SIZE=" + std::to_string(m.byteSize()) +
                " RET=HDRS ENVID=QQ314159");
  EXPECT_EQ(commandsStarting(cmds, "RCPT"),
            (std::vector<std::string>{
                "RCPT TO:<a@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bx@example.com",
                "RCPT TO:<b@example.com> NOTIFY=NEVER"}));

  server.extensions = {"PIPELINING"};
  openAndSend(m);
  const auto& plain = server.records.at(1).commands;
  EXPECT_EQ(commandsStarting(plain, "MAIL").at(0), "MAIL FROM:<sender@example.org>");
  EXPECT_EQ(commandsStarting(plain, "RCPT").at(0), "RCPT TO:<a@example.com>");
}

TEST_F(SmtpConnectionTest, NullSender) {
  OutboundMessage m = message({"a@example.com"});
  m.mail_from.clear();
  EXPECT_TRUE(openAndSend(m).allAccepted());
  EXPECT_EQ(commandsStarting(server.records.at(0).commands, "MAIL").at(0).substr(0, 12),
            "MAIL FROM:<>");
}

TEST_F(SmtpConnectionTest, MultiLineRepliesEverywhere) {
  server.greeting = "220-fake.test first\r\n220-second\r\n220 third";
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd.starts_with("RCPT")) {
      return "550-5.1.1 The email account that you tried to reach does not exist.\r\n"
             "550-5.1.1 Please double-check the recipient's email address\r\n"
             "550 5.1.1 for typos.";
    }
    return std::nullopt;
  };
  DeliveryReport rep = openAndSend(message({"a@example.com"}));
  const SmtpReply& r = rep.rcpts.at(0);
  EXPECT_EQ(r.code, 550);
  EXPECT_EQ(r.enhanced, "5.1.1");
  EXPECT_EQ(r.text,
            "The email account that you tried to reach does not exist. Please double-check the "
            "recipient's email address for typos.");
}

TEST_F(SmtpConnectionTest, GarbageReplyIsATemporaryHostFailure) {
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd.starts_with("MAIL")) return "HTTP/1.1 400 Bad Request";
    return std::nullopt;
  };
  DeliveryReport rep = openAndSend(message({"a@example.com"}));
  const SmtpReply& r = rep.rcpts.at(0);
  EXPECT_EQ(r.enhanced, "4.5.0");
  EXPECT_TRUE(r.host_level);
  EXPECT_NE(r.text.find("malformed reply"), std::string::npos);
  EXPECT_FALSE(last_usable);
}

TEST_F(SmtpConnectionTest, GreetingRefusalAndTimeouts) {
  server.greeting = "554 5.7.1 no service for you";
  SmtpReply failure;
  openAndSend(message({"a@example.com"}), &failure);
  EXPECT_EQ(failure.code, 554);
  EXPECT_EQ(failure.stage, Stage::kGreeting);
  EXPECT_TRUE(failure.host_level);

  opts.timeouts.greeting = 200ms;
  server.greeting = "";  // silent
  auto start = std::chrono::steady_clock::now();
  openAndSend(message({"a@example.com"}), &failure);
  EXPECT_EQ(failure.enhanced, "4.4.2");
  EXPECT_EQ(failure.text, "timeout while reading the reply");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST_F(SmtpConnectionTest, CommandAndFinalDotTimeouts) {
  opts.timeouts.command = 200ms;
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd.starts_with("RCPT")) return kHang;
    return std::nullopt;
  };
  auto start = std::chrono::steady_clock::now();
  DeliveryReport rep = openAndSend(message({"a@example.com"}));
  EXPECT_EQ(rep.rcpts.at(0).text, "timeout while reading the reply");
  EXPECT_EQ(rep.rcpts.at(0).stage, Stage::kRcpt);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);

  opts.timeouts.command = 3s;
  opts.timeouts.final_dot = 200ms;
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd == ".") return kHang;
    return std::nullopt;
  };
  rep = openAndSend(message({"a@example.com"}));
  EXPECT_EQ(rep.rcpts.at(0).stage, Stage::kDot);
  EXPECT_EQ(rep.rcpts.at(0).outcome(), Outcome::kTemporary);
}

TEST_F(SmtpConnectionTest, ConnectRefused) {
  const uint16_t port = server.port();
  server.stop();
  ctx.restart();
  ctx.run_for(100ms);
  auto fn = [&]() -> asio::awaitable<SmtpReply> {
    SmtpConnection c(ctx.get_executor(), opts);
    // Named: g++ 12 destroys a braced temporary in a co_await expression twice.
    Endpoint ep{"down.test", asio::ip::make_address("127.0.0.1"), port};
    co_return co_await c.open(ep);
  };
  SmtpReply r = run(fn());
  EXPECT_EQ(r.enhanced, "4.4.1");
  EXPECT_EQ(r.stage, Stage::kConnect);
  EXPECT_TRUE(r.host_level);
  EXPECT_EQ(r.host, "down.test[127.0.0.1]:" + std::to_string(port));
}

TEST_F(SmtpConnectionTest, CommandInjectionIsRefusedBeforeSending) {
  OutboundMessage m = message({"a@example.com>\r\nRSET", "ok@example.com", ""});
  DeliveryReport rep = openAndSend(m);
  EXPECT_EQ(rep.rcpts[0].enhanced, "5.1.3");
  EXPECT_EQ(rep.rcpts[1].code, 250);
  EXPECT_EQ(rep.rcpts[2].enhanced, "5.1.3");
  EXPECT_EQ(commandsStarting(server.records.at(0).commands, "RCPT").size(), 1u);
  EXPECT_TRUE(commandsStarting(server.records.at(0).commands, "RSET").empty());

  m = message({"a@example.com"});
  m.mail_from = "x@y\nDATA";
  rep = openAndSend(m);
  EXPECT_EQ(rep.rcpts[0].enhanced, "5.1.7");
  EXPECT_TRUE(commandsStarting(server.records.at(1).commands, "MAIL").empty());
}

TEST_F(SmtpConnectionTest, LargeMessageInManyChunks) {
  std::string body = "Subject: big\r\n\r\n";
  for (int i = 0; body.size() < 600 * 1024; ++i) {
    body += (i % 7 == 0 ? ".line " : "line ") + std::to_string(i) + (i % 5 ? "\r\n" : "\n");
  }
  OutboundMessage m = message({"a@example.com"}, body);
  // Several slices, split in the middle of lines and of line ends.
  std::string_view all = m.parts[0];
  m.parts = {all.substr(0, 1000), all.substr(1000, 70001), all.substr(71001)};
  DeliveryReport rep = openAndSend(m);
  ASSERT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();
  const std::string& got = server.records.at(0).messages.at(0);
  EXPECT_TRUE(got.ends_with("\r\n.\r\n"));
  EXPECT_EQ(got.find("\r\n.l"), std::string::npos) << "a leading dot went unstuffed";
  EXPECT_NE(got.find("\r\n..line 7\r\n"), std::string::npos);
}

}  // namespace
}  // namespace mxgate::smtp_client
