// STARTTLS policies and AUTH against the scripted server.
#include <string>

#include <gtest/gtest.h>

#include "gateway/smtp_client/client_testing.h"
#include "gateway/smtp_client/connection.h"
#include "gateway/util/temp_dir.h"

namespace mxgate::smtp_client {
namespace {

using testing::ClientTest;
using testing::commandsStarting;

class SmtpTlsTest : public ClientTest {
 protected:
  SmtpTlsTest() {
    server.tls = testing::serverTlsContext();
    ca_file = dir.write("ca.pem", testing::testCertificate().cert_pem);
  }
  mxgate::testing::TempDir dir{"smtp-client-tls"};
  std::string ca_file;
};

TEST_F(SmtpTlsTest, MayUsesTlsWhenOffered) {
  opts.tls = TlsPolicy::kMay;
  DeliveryReport rep = openAndSend(message({"a@example.com"}));
  EXPECT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();
  EXPECT_TRUE(last_tls);
  const auto& rec = server.records.at(0);
  EXPECT_TRUE(rec.tls);
  // EHLO again after the handshake (RFC 3207 4.2).
  EXPECT_EQ(rec.commands.at(0), "EHLO client.test");
  EXPECT_EQ(rec.commands.at(1), "STARTTLS");
  EXPECT_EQ(rec.commands.at(2), "EHLO client.test");
  EXPECT_EQ(rec.messages.size(), 1u);
}

TEST_F(SmtpTlsTest, MayFallsBackToPlainTextOnlyWhenNotOffered) {
  opts.tls = TlsPolicy::kMay;
  server.tls.reset();
  DeliveryReport rep = openAndSend(message({"a@example.com"}));
  EXPECT_TRUE(rep.allAccepted());
  EXPECT_FALSE(last_tls);
  EXPECT_TRUE(commandsStarting(server.records.at(0).commands, "STARTTLS").empty());
}

TEST_F(SmtpTlsTest, FailedHandshakeIsATemporaryHostFailureEvenUnderMay) {
  opts.tls = TlsPolicy::kMay;
  opts.timeouts.tls_handshake = 300ms;
  // The server says 220 to STARTTLS and then does not speak TLS.
  server.tls.reset();
  server.extensions = {"STARTTLS"};
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd == "STARTTLS") return "220 2.0.0 go ahead";
    return std::nullopt;
  };
  SmtpReply failure;
  openAndSend(message({"a@example.com"}), &failure);
  EXPECT_EQ(failure.stage, Stage::kStartTls);
  EXPECT_EQ(failure.enhanced, "4.7.5");
  // The server answers the ClientHello in plain text, or not at all.
  EXPECT_TRUE(failure.text.starts_with("TLS handshake failed: ")) << failure.text;
  EXPECT_TRUE(failure.host_level);
  EXPECT_TRUE(commandsStarting(server.records.at(0).commands, "MAIL").empty());
}

TEST_F(SmtpTlsTest, RepliesInjectedBeforeTheHandshakeAreRefused) {
  opts.tls = TlsPolicy::kMay;
  server.tls.reset();
  server.extensions = {"STARTTLS"};
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd == "STARTTLS") return "220 2.0.0 go ahead\r\n250 injected";
    return std::nullopt;
  };
  SmtpReply failure;
  openAndSend(message({"a@example.com"}), &failure);
  EXPECT_EQ(failure.stage, Stage::kStartTls);
  EXPECT_EQ(failure.text, "data after the STARTTLS reply");
  EXPECT_EQ(failure.outcome(), Outcome::kTemporary);
}

TEST_F(SmtpTlsTest, EncryptRequiresStartTls) {
  opts.tls = TlsPolicy::kEncrypt;
  DeliveryReport rep = openAndSend(message({"a@example.com"}));
  EXPECT_TRUE(rep.allAccepted());
  EXPECT_TRUE(server.records.at(0).tls);

  server.tls.reset();
  SmtpReply failure;
  openAndSend(message({"a@example.com"}), &failure);
  EXPECT_EQ(failure.enhanced, "4.7.4");
  EXPECT_TRUE(failure.host_level);
  EXPECT_TRUE(commandsStarting(server.records.at(1).commands, "MAIL").empty());
}

TEST_F(SmtpTlsTest, EncryptTreatsARefusedStartTlsAsFailure) {
  opts.tls = TlsPolicy::kEncrypt;
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd == "STARTTLS") return "454 4.7.0 TLS not available";
    return std::nullopt;
  };
  SmtpReply failure;
  openAndSend(message({"a@example.com"}), &failure);
  EXPECT_EQ(failure.enhanced, "4.7.4");
  // Under kMay the same refusal means plain text.
  opts.tls = TlsPolicy::kMay;
  EXPECT_TRUE(openAndSend(message({"a@example.com"})).allAccepted());
  EXPECT_FALSE(server.records.at(1).tls);
}

TEST_F(SmtpTlsTest, VerifyChecksChainAndName) {
  opts.tls = TlsPolicy::kVerify;
  opts.ca_file = ca_file;
  DeliveryReport rep = openAndSend(message({"a@example.com"}), nullptr, "mx.example.test");
  EXPECT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();

  SmtpReply failure;
  openAndSend(message({"a@example.com"}), &failure, "other.example.test");
  EXPECT_EQ(failure.enhanced, "4.7.5");
  EXPECT_NE(failure.text.find("TLS handshake failed"), std::string::npos) << failure.text;
  EXPECT_TRUE(failure.host_level);

  opts.ca_file.clear();  // the system's CAs do not know the test certificate
  openAndSend(message({"a@example.com"}), &failure, "mx.example.test");
  EXPECT_EQ(failure.enhanced, "4.7.5");
  EXPECT_NE(failure.text.find("certificate"), std::string::npos) << failure.text;
  EXPECT_EQ(commandsStarting(server.allCommands(), "MAIL").size(), 1u)
      << "no mail after a failed verification";
}

TEST_F(SmtpTlsTest, SharedContextFromMakeClientTlsContext) {
  opts.tls = TlsPolicy::kVerify;
  opts.tls_context = makeClientTlsContext(ca_file);
  EXPECT_TRUE(openAndSend(message({"a@example.com"})).allAccepted());
  EXPECT_THROW(makeClientTlsContext(dir.path() + "/missing.pem"), std::system_error);
}

class SmtpAuthTest : public SmtpTlsTest {
 protected:
  SmtpAuthTest() {
    opts.tls = TlsPolicy::kMay;
    opts.auth_user = "user";
    opts.auth_password = "secret";
  }
};

TEST_F(SmtpAuthTest, PlainOverTls) {
  server.auth_mechanisms = {"LOGIN", "PLAIN"};
  DeliveryReport rep = openAndSend(message({"a@example.com"}));
  EXPECT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();
  const auto& rec = server.records.at(0);
  EXPECT_EQ(rec.auth, "user");
  ASSERT_EQ(commandsStarting(rec.commands, "AUTH").size(), 1u);
  EXPECT_TRUE(commandsStarting(rec.commands, "AUTH")[0].starts_with("AUTH PLAIN "));
}

TEST_F(SmtpAuthTest, LoginWhenPlainIsNotOffered) {
  server.auth_mechanisms = {"LOGIN"};
  DeliveryReport rep = openAndSend(message({"a@example.com"}));
  EXPECT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();
  EXPECT_EQ(server.records.at(0).auth, "user");
  EXPECT_EQ(commandsStarting(server.records.at(0).commands, "AUTH").at(0), "AUTH LOGIN");
}

TEST_F(SmtpAuthTest, BadCredentialsArePermanentForTheHost) {
  server.auth_mechanisms = {"PLAIN"};
  opts.auth_password = "wrong";
  SmtpReply failure;
  openAndSend(message({"a@example.com"}), &failure);
  EXPECT_EQ(failure.code, 535);
  EXPECT_EQ(failure.outcome(), Outcome::kPermanent);
  EXPECT_TRUE(failure.host_level);
  EXPECT_EQ(failure.stage, Stage::kAuth);
  EXPECT_EQ(failure.text.find("wrong"), std::string::npos);
  EXPECT_TRUE(commandsStarting(server.records.at(0).commands, "MAIL").empty());
}

TEST_F(SmtpAuthTest, TemporaryAuthFailure) {
  server.auth_mechanisms = {"PLAIN"};
  server.reply = [](const std::string& cmd) -> std::optional<std::string> {
    if (cmd.starts_with("AUTH")) return "454 4.7.0 Temporary authentication failure";
    return std::nullopt;
  };
  SmtpReply failure;
  openAndSend(message({"a@example.com"}), &failure);
  EXPECT_EQ(failure.code, 454);
  EXPECT_EQ(failure.outcome(), Outcome::kTemporary);
}

TEST_F(SmtpAuthTest, NoCredentialsOverPlainText) {
  server.tls.reset();
  server.auth_mechanisms = {"PLAIN", "LOGIN"};
  SmtpReply failure;
  openAndSend(message({"a@example.com"}), &failure);
  EXPECT_EQ(failure.enhanced, "4.7.0");
  EXPECT_TRUE(failure.host_level);
  EXPECT_TRUE(commandsStarting(server.records.at(0).commands, "AUTH").empty())
      << "the credentials were sent in clear";
  EXPECT_TRUE(commandsStarting(server.records.at(0).commands, "MAIL").empty());

  opts.auth_over_plaintext = true;
  EXPECT_TRUE(openAndSend(message({"a@example.com"})).allAccepted());
  EXPECT_EQ(server.records.at(1).auth, "user");
}

TEST_F(SmtpAuthTest, NoCommonMechanism) {
  server.auth_mechanisms = {"CRAM-MD5"};
  SmtpReply failure;
  openAndSend(message({"a@example.com"}), &failure);
  EXPECT_EQ(failure.enhanced, "4.7.0");
  EXPECT_NE(failure.text.find("no AUTH mechanism"), std::string::npos);
}

}  // namespace
}  // namespace mxgate::smtp_client
