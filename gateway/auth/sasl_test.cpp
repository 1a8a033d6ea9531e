#include "gateway/auth/sasl.h"

#include <gtest/gtest.h>

namespace mxgate {
namespace {

using Kind = SaslStep::Kind;

std::string b64(std::string_view s) {
  return base64Encode(s);
}

TEST(Base64, RoundTripsAndIsStrict) {
  EXPECT_EQ(b64(std::string("\0alice\0secret", 13)), "AGFsaWNlAHNlY3JldA==");
  EXPECT_EQ(base64Decode("AGFsaWNlAHNlY3JldA==").value(), std::string("\0alice\0secret", 13));
  EXPECT_EQ(base64Decode("").value(), "");
  for (const char* bad : {"ab@%", "AGFsaWNlAHNlY3JldA=", "AGFsaWNl AHNl", "====", "YQ", "*"})
    EXPECT_FALSE(base64Decode(bad)) << bad;
}

TEST(Sasl, PlainWithInitialResponse) {
  SaslExchange x;
  SaslStep s = x.start("PLAIN " + b64(std::string("\0alice\0secret pw", 16)));
  ASSERT_EQ(s.kind, Kind::kCredentials);
  EXPECT_EQ(s.mechanism, "PLAIN");
  EXPECT_EQ(s.user, "alice");
  EXPECT_EQ(s.password, "secret pw");
  // The exchange is over.
  EXPECT_EQ(x.respond("AA==").reply.code, 503);
}

TEST(Sasl, PlainWithoutInitialResponseAsksWithAnEmptyChallenge) {
  SaslExchange x;
  SaslStep s = x.start("plain");
  ASSERT_EQ(s.kind, Kind::kChallenge);
  EXPECT_EQ(s.challenge, "");
  s = x.respond(b64(std::string("alice\0alice\0pw", 14)));
  ASSERT_EQ(s.kind, Kind::kCredentials);
  EXPECT_EQ(s.user, "alice");
  EXPECT_EQ(s.password, "pw");
}

TEST(Sasl, PlainAuthzidMustBeEmptyOrTheUser) {
  SaslExchange same_but_case;
  EXPECT_EQ(same_but_case.start("PLAIN " + b64(std::string("Alice\0alice\0pw", 14))).kind,
            Kind::kCredentials);
  SaslExchange other;
  SaslStep s = other.start("PLAIN " + b64(std::string("admin\0alice\0pw", 14)));
  ASSERT_EQ(s.kind, Kind::kError);
  EXPECT_EQ(s.reply.code, 535);
  EXPECT_EQ(s.reply.enhanced, "5.7.8");
  EXPECT_TRUE(s.auth_failure);
  EXPECT_EQ(s.user, "alice");
}

TEST(Sasl, PlainMalformedMessages) {
  for (std::string msg :
       {std::string("alice\0pw", 8), std::string("\0\0pw", 4), std::string("\0alice\0", 7),
        std::string("\0a\0b\0c", 6), std::string()}) {
    SaslExchange x;
    SaslStep s = x.start("PLAIN " + (msg.empty() ? std::string("=") : b64(msg)));
    ASSERT_EQ(s.kind, Kind::kError);
    EXPECT_EQ(s.reply.code, 501);
    EXPECT_EQ(s.reply.enhanced, "5.5.2");
    EXPECT_FALSE(s.auth_failure);
  }
}

TEST(Sasl, LoginFlow) {
  SaslExchange x;
  SaslStep s = x.start("LOGIN");
  ASSERT_EQ(s.kind, Kind::kChallenge);
  EXPECT_EQ(s.challenge, "VXNlcm5hbWU6");  // "Username:"
  s = x.respond(b64("bob@example.org"));
  ASSERT_EQ(s.kind, Kind::kChallenge);
  EXPECT_EQ(s.challenge, "UGFzc3dvcmQ6");  // "Password:"
  s = x.respond(b64("hunter2 hunter2"));
  ASSERT_EQ(s.kind, Kind::kCredentials);
  EXPECT_EQ(s.mechanism, "LOGIN");
  EXPECT_EQ(s.user, "bob@example.org");
  EXPECT_EQ(s.password, "hunter2 hunter2");
}

TEST(Sasl, LoginWithInitialUser) {
  SaslExchange x;
  SaslStep s = x.start("LOGIN " + b64("bob"));
  ASSERT_EQ(s.kind, Kind::kChallenge);
  EXPECT_EQ(s.challenge, "UGFzc3dvcmQ6");
  s = x.respond(b64("pw"));
  ASSERT_EQ(s.kind, Kind::kCredentials);
  EXPECT_EQ(s.user, "bob");
}

TEST(Sasl, StarCancelsAtEveryStep) {
  for (int at = 0; at < 2; ++at) {
    SaslExchange x;
    SaslStep s = x.start("LOGIN");
    if (at == 1) s = x.respond(b64("bob"));
    ASSERT_EQ(s.kind, Kind::kChallenge);
    s = x.respond("*");
    ASSERT_EQ(s.kind, Kind::kError);
    EXPECT_EQ(s.reply.code, 501);
    EXPECT_FALSE(s.auth_failure);
  }
  SaslExchange p;
  p.start("PLAIN");
  EXPECT_EQ(p.respond("*").reply.code, 501);
}

TEST(Sasl, BadBase64Is501_5_5_2) {
  SaslExchange x;
  SaslStep s = x.start("LOGIN ab@%");
  ASSERT_EQ(s.kind, Kind::kError);
  EXPECT_EQ(s.reply.code, 501);
  EXPECT_EQ(s.reply.enhanced, "5.5.2");
  SaslExchange y;
  y.start("PLAIN");
  EXPECT_EQ(y.respond("not base64!").reply.enhanced, "5.5.2");
}

TEST(Sasl, SyntaxAndUnknownMechanisms) {
  auto first = [](std::string_view arg) {
    SaslExchange x;
    return x.start(arg);
  };
  EXPECT_EQ(first("").reply.code, 501);
  EXPECT_EQ(first("PLAIN a b").reply.code, 501);
  EXPECT_EQ(first("PLAIN ").reply.code, 501);
  SaslStep s = first("CRAM-MD5");
  EXPECT_EQ(s.reply.code, 504);
  EXPECT_EQ(s.reply.enhanced, "5.5.4");
  EXPECT_EQ(first("DONT").reply.code, 504);
}

TEST(Sasl, EmptyAndOverlongLoginFieldsAreRefused) {
  SaslExchange x;
  x.start("LOGIN");
  EXPECT_EQ(x.respond("").reply.code, 501);  // empty user name
  SaslExchange y;
  y.start("LOGIN " + b64("bob"));
  EXPECT_EQ(y.respond(b64(std::string(2000, 'p'))).reply.code, 501);
  SaslExchange z;
  EXPECT_EQ(z.start("LOGIN " + b64(std::string(300, 'u'))).reply.code, 501);
}

}  // namespace
}  // namespace mxgate
