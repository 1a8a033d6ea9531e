#include "gateway/smtp/message_edit.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace mxgate::smtp {
namespace {

// One message's worth of inputs for buildMessageEdit.
class EditFixture {
 public:
  EditFixture() {
    config.hostname = "mx.example.net";
    session.client_ip = asio::ip::make_address("192.0.2.7");
    session.client_name = "client.example";
    session.helo = "helo.example";
    session.esmtp = true;
    envelope.mail_from = "alice@example.org";
    envelope.rcpts.push_back(Recipient{"bob@example.com", "", ""});
    result.addHit(SymbolHit{"TEST_ONE", 1.5, "", "test"});
    result.addHit(SymbolHit{"TEST_TWO", 2.25, "", "test"});
  }

  MessageEdit build(std::string_view message, Action action, std::string trace = "") {
    MessageEditInput in{config, session, envelope, queue_id, result, action, std::move(trace)};
    return buildMessageEdit(in, message);
  }

  Config config;
  SessionInfo session;
  Envelope envelope;
  std::string queue_id = "4XyZ7Q2";
  ScanResult result;
};

std::string joined(const MessageEdit& e) {
  std::string out;
  for (std::string_view p : e.parts()) out += p;
  return out;
}

std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find("\r\n", start);
    if (end == std::string_view::npos) end = text.size();
    out.emplace_back(text.substr(start, end - start));
    start = end + 2;
  }
  return out;
}

bool within(std::string_view part, std::string_view buffer) {
  return part.data() >= buffer.data() && part.data() + part.size() <= buffer.data() + buffer.size();
}

const std::string kMessage = "From: alice@example.org\r\nSubject: hello there\r\n\r\nbody\r\n";

TEST(MessageEdit, ReceivedHeaderComesFirst) {
  EditFixture f;
  MessageEdit e = f.build(kMessage, Action::kAccept);
  const std::string& pre = e.prepended();
  ASSERT_EQ(pre.rfind("Received: ", 0), 0u) << pre;
  const std::string received = pre.substr(0, pre.find("\r\nX-Mxgate-Status"));
  EXPECT_NE(received.find("from helo.example (client.example [192.0.2.7])"), std::string::npos)
      << received;
  EXPECT_NE(received.find("by mx.example.net (mxgate) with ESMTP id 4XyZ7Q2"), std::string::npos)
      << received;
  EXPECT_NE(received.find("\r\n\tfor <bob@example.com>; "), std::string::npos) << received;
  // Every line of it is part of one folded field.
  std::vector<std::string> ls = lines(received);
  for (size_t i = 1; i < ls.size(); ++i) EXPECT_EQ(ls[i][0], '\t') << ls[i];
}

TEST(MessageEdit, ReceivedNamesTheRecipientOnlyWhenThereIsOne) {
  EditFixture f;
  f.envelope.rcpts.push_back(Recipient{"carol@example.com", "", ""});
  MessageEdit e = f.build(kMessage, Action::kAccept);
  EXPECT_EQ(e.prepended().find("for <"), std::string::npos) << e.prepended();
  EXPECT_EQ(e.prepended().find("bob@example.com"), std::string::npos);
}

TEST(MessageEdit, ClientTextCannotInjectHeaderLines) {
  EditFixture f;
  f.session.helo = std::string("evil\rX-Injected: yes\x00\x7f", 22);
  f.session.client_name = "name\tx";
  MessageEdit e = f.build(kMessage, Action::kAccept);
  const std::string& pre = e.prepended();
  for (size_t i = 0; i < pre.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(pre[i]);
    if (c == '\r') {
      EXPECT_EQ(pre[i + 1], '\n') << "bare CR at " << i;
    } else if (c == '\n') {
      EXPECT_EQ(pre[i - 1], '\r') << "bare LF at " << i;
    } else if (c == '\t') {
      EXPECT_EQ(pre[i - 1], '\n') << "tab outside folding at " << i;
    } else {
      EXPECT_TRUE(c >= 0x20 && c != 0x7f) << "control character " << int(c) << " at " << i;
    }
  }
  EXPECT_NE(pre.find("from evil?X-Injected: yes?? (name?x [192.0.2.7])"), std::string::npos) << pre;
}

TEST(MessageEdit, ProtocolNames) {
  SessionInfo s;
  EXPECT_EQ(protocolName(s), "SMTP");
  s.esmtp = true;
  EXPECT_EQ(protocolName(s), "ESMTP");
  s.tls = true;
  EXPECT_EQ(protocolName(s), "ESMTPS");
  s.auth_user = "u";
  EXPECT_EQ(protocolName(s), "ESMTPSA");
  s.tls = false;
  EXPECT_EQ(protocolName(s), "ESMTPA");
}

TEST(MessageEdit, Rfc5322Date) {
  EXPECT_EQ(rfc5322Date(std::chrono::system_clock::time_point{}),
            "Thu, 01 Jan 1970 00:00:00 +0000");
  EXPECT_EQ(rfc5322Date(std::chrono::system_clock::from_time_t(1700000000)),
            "Tue, 14 Nov 2023 22:13:20 +0000");
}

TEST(MessageEdit, StatusHeaderIsFoldedTo78Columns) {
  EditFixture f;
  std::string trace;
  for (int i = 0; i < 30; ++i) trace += "SOME_RATHER_LONG_SYMBOL_" + std::to_string(i) + "(0.50) ";
  trace.pop_back();
  MessageEdit e = f.build(kMessage, Action::kAccept, trace);
  const std::string& pre = e.prepended();
  size_t start = pre.find("X-Mxgate-Status:");
  ASSERT_NE(start, std::string::npos) << pre;
  std::string field;
  for (const std::string& l : lines(pre.substr(start))) {
    if (!field.empty() && l[0] != '\t') break;
    EXPECT_LE(l.size(), 78u) << l;
    field += l;
  }
  EXPECT_GT(field.size(), 78u * 5) << "expected several folded lines";
  // Unfolded, the value is what was given.
  std::string unfolded;
  for (char c : field) unfolded += c == '\t' ? ' ' : c;
  EXPECT_EQ(unfolded,
            "X-Mxgate-Status: mx.example.net; action=accept; score=3.75; symbols=" + trace);
}

TEST(MessageEdit, StatusHeaderSaysNoneWithoutSymbolsAndCanBeOff) {
  EditFixture f;
  EXPECT_NE(f.build(kMessage, Action::kAccept).prepended().find("symbols=none\r\n"),
            std::string::npos);
  f.config.policy.status_header.clear();
  EXPECT_EQ(f.build(kMessage, Action::kAccept).prepended().find("X-Mxgate-Status"),
            std::string::npos);
}

TEST(FoldHeader, LinesStayWithin78Columns) {
  // A continuation line holding one short word must still fold before a long one.
  const std::string name = "X-Mxgate-Status";
  const std::string value =
      std::string(60, 'a') + " " + std::string(15, 'b') + " " + std::string(62, 'c') + " d";
  std::string folded = foldHeader(name, value);
  ASSERT_EQ(folded.substr(folded.size() - 2), "\r\n");
  for (const std::string& l : lines(folded)) EXPECT_LE(l.size(), 78u) << l;
  EXPECT_EQ(folded, name + ": " + std::string(60, 'a') + "\r\n\t" + std::string(15, 'b') +
                        "\r\n\t" + std::string(62, 'c') + " d\r\n");
}

TEST(FoldHeader, AnOverlongWordStaysWholeOnItsOwnLine) {
  const std::string word(100, 'x');
  EXPECT_EQ(foldHeader("X", word), "X: " + word + "\r\n");
  EXPECT_EQ(foldHeader("X", "a " + word + " b"), "X: a\r\n\t" + word + "\r\n\tb\r\n");
}

TEST(MessageEdit, SpamFlagOnlyFromAddHeaderUp) {
  EditFixture f;
  for (Action a : {Action::kAccept, Action::kAddHeader, Action::kTagSubject, Action::kQuarantine,
                   Action::kDiscard, Action::kReject}) {
    MessageEdit e = f.build(kMessage, a);
    bool flagged = e.prepended().find("X-Spam-Flag: YES\r\n") != std::string::npos;
    EXPECT_EQ(flagged, a >= Action::kAddHeader) << actionName(a);
    EXPECT_EQ(e.prepended().find("X-Spam-Score: 3.75\r\n") != std::string::npos, flagged)
        << actionName(a);
  }
}

TEST(MessageEdit, SubjectTagInsertedIntoExistingSubject) {
  EditFixture f;
  MessageEdit e = f.build(kMessage, Action::kTagSubject);
  EXPECT_EQ(
      joined(e),
      e.prepended() + "From: alice@example.org\r\nSubject: [SPAM] hello there\r\n\r\nbody\r\n");
  // The subject tag goes into the first Subject field only, case-insensitively.
  const std::string two = "subject:x\r\nSubject: y\r\n\r\n";
  MessageEdit e2 = f.build(two, Action::kTagSubject);
  EXPECT_EQ(joined(e2), e2.prepended() + "subject:[SPAM] x\r\nSubject: y\r\n\r\n");
}

TEST(MessageEdit, SubjectAddedWhenMissing) {
  EditFixture f;
  const std::string m = "From: a@example.org\r\n\r\nSubject: not a header\r\n";
  MessageEdit e = f.build(m, Action::kTagSubject);
  EXPECT_NE(e.prepended().find("\r\nSubject: [SPAM]\r\n"), std::string::npos) << e.prepended();
  EXPECT_EQ(joined(e), e.prepended() + m);
}

TEST(MessageEdit, SubjectTagOnlyForTagSubjectAction) {
  EditFixture f;
  for (Action a : {Action::kAccept, Action::kAddHeader, Action::kQuarantine, Action::kReject}) {
    MessageEdit e = f.build(kMessage, a);
    EXPECT_EQ(joined(e), e.prepended() + kMessage) << actionName(a);
    EXPECT_EQ(e.prepended().find("[SPAM]"), std::string::npos) << actionName(a);
  }
  f.config.policy.subject_tag.clear();
  MessageEdit e = f.build(kMessage, Action::kTagSubject);
  EXPECT_EQ(joined(e), e.prepended() + kMessage);
}

TEST(MessageEdit, ConcatenatedPartsAreTheExpectedBytes) {
  EditFixture f;
  f.config.policy.subject_tag = "***SPAM***";
  MessageEdit e = f.build(kMessage, Action::kTagSubject, "TEST_ONE(1.50) TEST_TWO(2.25)");
  const std::string& pre = e.prepended();
  // Received ends with the date; the rest is fully determined.
  const size_t date_end = pre.find(" +0000\r\n");
  ASSERT_NE(date_end, std::string::npos);
  const std::string expected_tail =
      "X-Mxgate-Status: mx.example.net; action=tag_subject; score=3.75;\r\n"
      "\tsymbols=TEST_ONE(1.50) TEST_TWO(2.25)\r\n"
      "X-Spam-Flag: YES\r\n"
      "X-Spam-Score: 3.75\r\n"
      "From: alice@example.org\r\n"
      "Subject: ***SPAM*** hello there\r\n"
      "\r\n"
      "body\r\n";
  EXPECT_EQ(joined(e).substr(date_end + 8), expected_tail);
}

TEST(MessageEdit, OriginalBytesAreReferencedNotCopied) {
  EditFixture f;
  const std::string message = kMessage;
  for (Action a : {Action::kAccept, Action::kTagSubject}) {
    MessageEdit e = f.build(message, a);
    std::vector<std::string_view> parts = e.parts();
    ASSERT_GE(parts.size(), 2u);
    EXPECT_EQ(parts[0].data(), e.prepended().data());
    size_t from_message = 0;
    const char* next = message.data();
    for (size_t i = 1; i < parts.size(); ++i) {
      if (!within(parts[i], message)) continue;  // the tag
      EXPECT_EQ(parts[i].data(), next) << "message slices are in order and contiguous";
      next = parts[i].data() + parts[i].size();
      from_message += parts[i].size();
    }
    EXPECT_EQ(from_message, message.size()) << actionName(a);
    EXPECT_EQ(next, message.data() + message.size());
  }
}

TEST(MessageEdit, ForgedAuthenticationResultsAreLeftOut) {
  EditFixture f;
  f.config.authserv_id = "mx.example.net";
  const std::string message =
      "Authentication-Results: mx.example.net; spf=pass\r\n\tsmtp.mailfrom=forged@example.org\r\n"
      "Authentication-Results: other.example; dkim=pass header.d=example.org\r\n"
      "From: alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
  f.result.auth().spf = {"fail", "mailfrom", "example.org", "alice@example.org", "", "", ""};
  std::string out = joined(f.build(message, Action::kTagSubject));
  EXPECT_EQ(out.find("forged@"), std::string::npos);
  EXPECT_NE(out.find("Authentication-Results: other.example; dkim=pass"), std::string::npos);
  EXPECT_NE(out.find("Authentication-Results: mx.example.net; spf=fail\r\n"
                     "\tsmtp.mailfrom=alice@example.org\r\n"),
            std::string::npos);
  EXPECT_NE(out.find("Subject: [SPAM] hi\r\n\r\nbody\r\n"), std::string::npos);
}

TEST(MessageEdit, FilterHeadersAndRemovedRanges) {
  EditFixture f;
  const std::string message = "X-Drop: me\r\nFrom: a@example.org\r\n\r\nbody\r\n";
  f.result.addHeader("Received-SPF", "pass (mx: domain of a@example.org designates 192.0.2.7)");
  f.result.removeRange(0, 12);
  std::string out = joined(f.build(message, Action::kAccept));
  size_t spf = out.find("Received-SPF: pass");
  ASSERT_NE(spf, std::string::npos);
  EXPECT_LT(out.find("Received: "), spf);
  EXPECT_LT(spf, out.find("X-Mxgate-Status"));
  EXPECT_EQ(out.find("X-Drop"), std::string::npos);
  EXPECT_TRUE(out.ends_with("\r\nFrom: a@example.org\r\n\r\nbody\r\n")) << out;
}

TEST(MessageEdit, FrozenContentIsNotTagged) {
  EditFixture f;
  f.result.freezeContent();
  std::string out = joined(f.build(kMessage, Action::kTagSubject));
  EXPECT_NE(out.find("X-Spam-Flag: YES"), std::string::npos);
  EXPECT_NE(out.find("Subject: hello there"), std::string::npos);
}

}  // namespace
}  // namespace mxgate::smtp

namespace mxgate::smtp {
namespace {

TEST(AuthenticationResults, EmptyWhenNothingChecked) {
  EXPECT_EQ(authenticationResults("mx.test", AuthFacts{}), "");
}

TEST(AuthenticationResults, ListsSpfEverySignatureAndDmarc) {
  AuthFacts a;
  a.spf = {"pass", "mailfrom", "example.org", "u@example.org", "", "", ""};
  a.dkim_checked = true;
  a.dkim.push_back({"pass", "example.org", "s1", "rsa-sha256", "abcdefgh", ""});
  a.dkim.push_back({"fail", "other.test", "s2", "ed25519-sha256", "12345678", "body hash"});
  a.dmarc = {"pass", "example.org", "reject", "none", ""};
  EXPECT_EQ(authenticationResults("mx.test", a),
            "mx.test; spf=pass smtp.mailfrom=u@example.org; dkim=pass header.d=example.org "
            "header.s=s1 header.a=rsa-sha256 header.b=abcdefgh; dkim=fail (body hash) "
            "header.d=other.test header.s=s2 header.a=ed25519-sha256 header.b=12345678; "
            "dmarc=pass (p=reject dis=none) header.from=example.org");
}

TEST(AuthenticationResults, HeloIdentityAndNoSignature) {
  AuthFacts a;
  a.spf = {"none", "helo", "client.test", "postmaster@client.test", "", "", ""};
  a.dkim_checked = true;
  EXPECT_EQ(authenticationResults("mx", a), "mx; spf=none smtp.helo=client.test; dkim=none");
}

TEST(AuthenticationResults, ClaimsAuthservId) {
  EXPECT_TRUE(claimsAuthservId(" mx.test; spf=pass", "MX.test"));
  EXPECT_TRUE(claimsAuthservId(" (comment (nested)) mx.test 1; none", "mx.test"));
  EXPECT_TRUE(claimsAuthservId("\r\n\t\"mx.test\"; none", "mx.test"));
  EXPECT_FALSE(claimsAuthservId(" mx.test.evil; none", "mx.test"));
  EXPECT_FALSE(claimsAuthservId(" other; none", "mx.test"));
}

}  // namespace
}  // namespace mxgate::smtp
