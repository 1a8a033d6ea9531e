#include "gateway/smtp_client/reply.h"

#include <gtest/gtest.h>

namespace mxgate::smtp_client {
namespace {

SmtpReply parse(const std::vector<std::string>& lines, ReplyParser::Status* last = nullptr) {
  ReplyParser p;
  ReplyParser::Status st = ReplyParser::Status::kMore;
  for (const std::string& l : lines) st = p.addLine(l);
  if (last) *last = st;
  return p.reply(Stage::kRcpt, "mx.test[192.0.2.1]:25");
}

TEST(ReplyParser, SingleLineWithEnhancedCode) {
  ReplyParser::Status st;
  SmtpReply r = parse({"550 5.1.1 <a@b>: Recipient address rejected"}, &st);
  EXPECT_EQ(st, ReplyParser::Status::kDone);
  EXPECT_EQ(r.code, 550);
  EXPECT_EQ(r.enhanced, "5.1.1");
  EXPECT_EQ(r.text, "<a@b>: Recipient address rejected");
  EXPECT_EQ(r.outcome(), Outcome::kPermanent);
  EXPECT_EQ(r.describe(),
            "host mx.test[192.0.2.1]:25 said: 550 5.1.1 <a@b>: Recipient address rejected (in "
            "reply to RCPT TO command)");
}

TEST(ReplyParser, MultiLineRepliesJoinTheirText) {
  ReplyParser p;
  EXPECT_EQ(p.addLine("451-4.7.1 greylisted,"), ReplyParser::Status::kMore);
  EXPECT_EQ(p.addLine("451-4.7.1 please"), ReplyParser::Status::kMore);
  EXPECT_EQ(p.addLine("451 4.7.1 retry later"), ReplyParser::Status::kDone);
  SmtpReply r = p.reply(Stage::kRcpt, "h");
  EXPECT_EQ(r.enhanced, "4.7.1");
  EXPECT_EQ(r.text, "greylisted, please retry later");
  EXPECT_EQ(r.outcome(), Outcome::kTemporary);
  ASSERT_EQ(p.lines().size(), 3u);
}

TEST(ReplyParser, WithoutEnhancedCodeOneIsDerived) {
  SmtpReply r = parse({"250 ok"});
  EXPECT_EQ(r.enhanced, "2.0.0");
  EXPECT_EQ(r.text, "ok");
  EXPECT_EQ(parse({"354"}).text, "");
  // An enhanced code of another class than the reply is text.
  SmtpReply odd = parse({"450 5.1.1 odd"});
  EXPECT_EQ(odd.enhanced, "4.0.0");
  EXPECT_EQ(odd.text, "5.1.1 odd");
  EXPECT_EQ(parse({"250 2.1.5"}).enhanced, "2.1.5");
  EXPECT_EQ(parse({"250 2.1.5x"}).enhanced, "2.0.0");
}

TEST(ReplyParser, GarbageIsBad) {
  for (std::string bad : {"", "25", "hello", "250x", "2500 ok", "650 no", "150 no", "25a ok"}) {
    ReplyParser p;
    EXPECT_EQ(p.addLine(bad), ReplyParser::Status::kBad) << bad;
  }
  ReplyParser p;
  EXPECT_EQ(p.addLine("250-a"), ReplyParser::Status::kMore);
  EXPECT_EQ(p.addLine("251 b"), ReplyParser::Status::kBad) << "codes differ between lines";
}

TEST(ReplyParser, LimitsOnLinesAndLength) {
  ReplyParser p;
  EXPECT_EQ(p.addLine("250 " + std::string(kMaxReplyLine, 'x')), ReplyParser::Status::kBad);
  ReplyParser many;
  ReplyParser::Status st = ReplyParser::Status::kMore;
  for (size_t i = 0; i <= kMaxReplyLines && st == ReplyParser::Status::kMore; ++i) {
    st = many.addLine("250-x");
  }
  EXPECT_EQ(st, ReplyParser::Status::kBad);
}

TEST(SmtpReply, LocalRepliesDescribeThemselves) {
  SmtpReply r = localReply(451, "4.4.1", "connect failed: Connection refused", Stage::kConnect,
                           "mx.test[192.0.2.1]:25", true);
  EXPECT_EQ(r.describe(),
            "mx.test[192.0.2.1]:25: 4.4.1 connect failed: Connection refused (connect)");
  EXPECT_EQ(r.outcome(), Outcome::kTemporary);
  EXPECT_TRUE(r.host_level);
}

}  // namespace
}  // namespace mxgate::smtp_client
