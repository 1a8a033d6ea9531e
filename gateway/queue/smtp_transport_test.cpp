#include "gateway/queue/smtp_transport.h"

#include <gtest/gtest.h>

namespace mxgate {
namespace {

namespace sc = smtp_client;

sc::SmtpReply reply(int code, std::string enhanced, std::string text, bool local, bool host_level) {
  sc::SmtpReply r;
  r.code = code;
  r.enhanced = std::move(enhanced);
  r.text = std::move(text);
  r.host = local ? "" : "mx.test[192.0.2.1]:25";
  r.stage = sc::Stage::kRcpt;
  r.local = local;
  r.host_level = host_level;
  return r;
}

TEST(SmtpTransport, RecipientRefusalFailsWithTheServersWords) {
  DeliveryResult r = toDeliveryResult(reply(550, "5.1.1", "no such user", false, false), false);
  EXPECT_EQ(r.kind, DeliveryResult::Kind::kFailed);
  EXPECT_EQ(r.reply.rfind("5.1.1 ", 0), 0u) << r.reply;
  EXPECT_NE(r.reply.find("said: 550 5.1.1 no such user"), std::string::npos) << r.reply;
  EXPECT_EQ(r.remote, "mx.test[192.0.2.1]:25");
  EXPECT_FALSE(r.destination_down);
}

TEST(SmtpTransport, UnknownDomainIsRetriedUntilTheDnsErrorLimit) {
  DeliveryResult r = toDeliveryResult(reply(550, "5.1.2", "domain x.test not found", true, false),
                                      /*dns_error=*/true);
  EXPECT_EQ(r.kind, DeliveryResult::Kind::kDeferred);
  EXPECT_TRUE(r.dns_error);
  EXPECT_EQ(r.reply.find("5.1.2 5.1.2"), std::string::npos) << "status given once: " << r.reply;
}

TEST(SmtpTransport, HostLevelTemporaryFailureMarksTheDestinationDown) {
  DeliveryResult r = toDeliveryResult(reply(421, "4.4.1", "connection refused", true, true), false);
  EXPECT_EQ(r.kind, DeliveryResult::Kind::kDeferred);
  EXPECT_TRUE(r.destination_down);
  DeliveryResult busy = toDeliveryResult(reply(451, "4.3.2", "try later", false, false), false);
  EXPECT_FALSE(busy.destination_down);
}

}  // namespace
}  // namespace mxgate
