#include "gateway/queue/bounce.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "gateway/util/strings.h"

namespace mxgate {
namespace {

using std::chrono::system_clock;
constexpr int64_t kReceivedMs = 1'700'000'000'000;  // Tue, 14 Nov 2023 22:13:20 +0000

const std::string kOriginal =
    "Received: from client.example ([192.0.2.1]) by mx.example.test\r\n"
    "From: Sender <sender@origin.example>\r\n"
    "To: <user@example.test>\r\n"
    "Subject: hello\r\n"
    "Message-ID: <orig.1@origin.example>\r\n"
    "\r\n"
    "The body line one.\r\n"
    "The body line two.\r\n";

SpoolMeta makeMeta(std::vector<Recipient> rcpts = {{"user@example.test", "", ""}}) {
  SpoolMeta m;
  m.queue_id = "Q1234ABCD";
  m.received_ms = kReceivedMs;
  m.client_ip = "192.0.2.1";
  m.helo = "client.example";
  m.envelope.mail_from = "sender@origin.example";
  m.envelope.rcpts = std::move(rcpts);
  m.symbols = "SPF_PASS(0.00)[origin.example]";
  return m;
}

BounceRecipient failedRcpt(std::string addr, std::string status = "5.1.1",
                           std::string diag = "550 5.1.1 <user@example.test>: no such user") {
  BounceRecipient r;
  r.address = std::move(addr);
  r.status = std::move(status);
  r.diagnostic = std::move(diag);
  r.last_attempt = system_clock::time_point(std::chrono::milliseconds(kReceivedMs + 60'000));
  return r;
}

BounceRecipient delayedRcpt(std::string addr) {
  BounceRecipient r = failedRcpt(std::move(addr), "4.2.2", "4.2.2 mailbox full");
  r.retry_until =
      system_clock::time_point(std::chrono::milliseconds(kReceivedMs)) + std::chrono::hours(120);
  return r;
}

struct Fixture {
  SpoolMeta meta = makeMeta();
  std::string message = kOriginal;
  BounceOptions options;
  BounceOutcome run(std::vector<BounceRecipient> failed,
                    std::vector<BounceRecipient> delayed = {}) {
    BounceRequest req;
    req.meta = &meta;
    req.message = message;
    req.failed = std::move(failed);
    req.delayed = std::move(delayed);
    req.reporting_mta = "mx.example.test";
    req.now = system_clock::time_point(std::chrono::milliseconds(kReceivedMs + 120'000));
    return buildBounce(req, options);
  }
};

// A MIME entity split into unfolded header fields (lowercase names) and body.
struct Entity {
  std::multimap<std::string, std::string> fields;
  std::string body;
  std::string field(const std::string& name) const {
    auto it = fields.find(name);
    return it == fields.end() ? "<absent>" : it->second;
  }
};

Entity parseEntity(std::string_view text) {
  Entity e;
  size_t end = text.find("\r\n\r\n");
  std::string_view head = text.substr(0, end == text.npos ? text.size() : end + 2);
  e.body = end == text.npos ? "" : std::string(text.substr(end + 4));
  std::string name, value;
  auto flush = [&] {
    if (!name.empty()) e.fields.emplace(toLower(name), value);
    name.clear();
    value.clear();
  };
  while (!head.empty()) {
    size_t nl = head.find("\r\n");
    std::string_view line = head.substr(0, nl);
    head.remove_prefix(nl == head.npos ? head.size() : nl + 2);
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      value += " " + std::string(line.substr(1));
      continue;
    }
    flush();
    size_t colon = line.find(':');
    if (colon == line.npos) continue;
    name = line.substr(0, colon);
    value = line.substr(colon + 1);
    while (!value.empty() && value[0] == ' ') value.erase(0, 1);
  }
  flush();
  return e;
}

std::string boundaryOf(const Entity& e) {
  std::string ct = e.field("content-type");
  size_t b = ct.find("boundary=\"");
  if (b == std::string::npos) return {};
  b += 10;
  return ct.substr(b, ct.find('"', b) - b);
}

// The body parts of a multipart body, each without the CRLF that belongs to
// the next delimiter (RFC 2046 5.1.1).
std::vector<std::string> splitParts(const std::string& body, const std::string& boundary) {
  std::vector<std::string> parts;
  const std::string delim = "\r\n--" + boundary;
  std::string text = "\r\n" + body;
  size_t pos = text.find(delim);
  while (pos != std::string::npos) {
    size_t line_end = text.find("\r\n", pos + delim.size());
    if (text.compare(pos + delim.size(), 2, "--") == 0) break;
    size_t next = text.find(delim, line_end);
    if (next == std::string::npos) break;
    parts.push_back(text.substr(line_end + 2, next - line_end - 2));
    pos = next;
  }
  return parts;
}

// Delivery-status groups: per-message fields first, then one per recipient.
std::vector<Entity> statusGroups(const std::string& report) {
  std::vector<Entity> groups;
  size_t pos = 0;
  while (pos < report.size()) {
    size_t end = report.find("\r\n\r\n", pos);
    std::string group =
        report.substr(pos, end == std::string::npos ? std::string::npos : end - pos + 2);
    groups.push_back(parseEntity(group + "\r\n"));
    pos = end == std::string::npos ? report.size() : end + 4;
  }
  return groups;
}

struct Parsed {
  Entity top;
  std::vector<Entity> parts;
  std::vector<Entity> status;  // of part 2
};

Parsed parse(const Bounce& b) {
  Parsed p;
  p.top = parseEntity(b.message);
  for (const std::string& part : splitParts(p.top.body, boundaryOf(p.top)))
    p.parts.push_back(parseEntity(part));
  if (p.parts.size() >= 2) p.status = statusGroups(p.parts[1].body);
  return p;
}

void expectCrlfOnly(const std::string& m) {
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n') {
      ASSERT_TRUE(i > 0 && m[i - 1] == '\r') << "bare LF at " << i;
    }
    if (m[i] == '\r') {
      ASSERT_TRUE(i + 1 < m.size() && m[i + 1] == '\n') << "bare CR at " << i;
    }
  }
  ASSERT_TRUE(m.size() >= 2 && m.compare(m.size() - 2, 2, "\r\n") == 0);
}

size_t longestLine(std::string_view m) {
  size_t longest = 0;
  while (!m.empty()) {
    size_t nl = m.find("\r\n");
    longest = std::max(longest, nl == m.npos ? m.size() : nl);
    m.remove_prefix(nl == m.npos ? m.size() : nl + 2);
  }
  return longest;
}

TEST(Bounce, FailureDsnStructure) {
  Fixture f;
  BounceOutcome o = f.run({failedRcpt("user@example.test")});
  ASSERT_TRUE(o.send) << o.reason;
  EXPECT_EQ(o.reason, "failure DSN for 1 recipient(s) to <sender@origin.example>");
  EXPECT_EQ(o.bounce.envelope_from, "");
  EXPECT_EQ(o.bounce.envelope_to, "sender@origin.example");
  EXPECT_EQ(o.bounce.reported, std::vector<std::string>{"user@example.test"});
  EXPECT_FALSE(o.bounce.eight_bit);
  EXPECT_FALSE(o.bounce.smtputf8);
  expectCrlfOnly(o.bounce.message);

  Parsed p = parse(o.bounce);
  EXPECT_EQ(p.top.field("from"), "\"Mail Delivery System\" <MAILER-DAEMON@mx.example.test>");
  EXPECT_EQ(p.top.field("to"), "<sender@origin.example>");
  EXPECT_EQ(p.top.field("subject"), "Undelivered Mail Returned to Sender");
  EXPECT_EQ(p.top.field("date"), "Tue, 14 Nov 2023 22:15:20 +0000");
  EXPECT_EQ(p.top.field("message-id"), "<1700000120000.Q1234ABCD.F@mx.example.test>");
  EXPECT_EQ(p.top.field("mime-version"), "1.0");
  EXPECT_EQ(p.top.field("auto-submitted"), "auto-replied");
  EXPECT_EQ(p.top.field("content-type")
                .rfind("multipart/report; report-type=delivery-status; boundary=\"", 0),
            0u)
      << p.top.field("content-type");
  ASSERT_EQ(p.parts.size(), 3u) << o.bounce.message;
  EXPECT_EQ(p.parts[0].field("content-type"), "text/plain; charset=utf-8");
  EXPECT_NE(
      p.parts[0].body.find("<user@example.test>: 550 5.1.1 <user@example.test>: no such user"),
      std::string::npos)
      << p.parts[0].body;
  EXPECT_EQ(p.parts[1].field("content-type"), "message/delivery-status");
  EXPECT_EQ(p.parts[2].field("content-type"), "text/rfc822-headers");

  ASSERT_EQ(p.status.size(), 2u) << p.parts[1].body;
  const Entity& msg = p.status[0];
  EXPECT_EQ(msg.field("reporting-mta"), "dns; mx.example.test");
  EXPECT_EQ(msg.field("arrival-date"), "Tue, 14 Nov 2023 22:13:20 +0000");
  EXPECT_EQ(msg.field("x-mxgate-queue-id"), "Q1234ABCD");
  EXPECT_EQ(msg.field("original-envelope-id"), "<absent>");
  const Entity& r = p.status[1];
  EXPECT_EQ(r.field("final-recipient"), "rfc822; user@example.test");
  EXPECT_EQ(r.field("original-recipient"), "<absent>");
  EXPECT_EQ(r.field("action"), "failed");
  EXPECT_EQ(r.field("status"), "5.1.1");
  EXPECT_EQ(r.field("remote-mta"), "<absent>");
  EXPECT_EQ(r.field("diagnostic-code"), "smtp; 550 5.1.1 <user@example.test>: no such user");
  EXPECT_EQ(r.field("last-attempt-date"), "Tue, 14 Nov 2023 22:14:20 +0000");
  EXPECT_EQ(r.field("will-retry-until"), "<absent>");
}

TEST(Bounce, ReportFieldsForRemoteAndEnvelopeIds) {
  Fixture f;
  f.meta = makeMeta({{"a@example.test", "FAILURE", "rfc822;orig+2Bx@alias.example"},
                     {"b@example.test", "", "utf-8;b@example.test"}});
  f.meta.envelope.envid = "abc+2Bdef";
  BounceRecipient a = failedRcpt("a@example.test");
  a.remote_mta = "mx.remote.example";
  BounceRecipient b = failedRcpt("b@example.test", "5.2.2", "5.2.2 mailbox full");
  b.envelope_index = 1;
  BounceOutcome o = f.run({a, b});
  ASSERT_TRUE(o.send) << o.reason;
  Parsed p = parse(o.bounce);
  ASSERT_EQ(p.status.size(), 3u);
  EXPECT_EQ(p.status[0].field("original-envelope-id"), "abc+def");
  EXPECT_EQ(p.status[1].field("original-recipient"), "rfc822; orig+x@alias.example");
  EXPECT_EQ(p.status[1].field("remote-mta"), "dns; mx.remote.example");
  EXPECT_EQ(p.status[2].field("original-recipient"), "utf-8; b@example.test");
  EXPECT_EQ(p.status[2].field("status"), "5.2.2");
  // A reply without an SMTP code is a local diagnostic.
  EXPECT_EQ(p.status[2].field("diagnostic-code"), "x-local; 5.2.2 mailbox full");
  EXPECT_NE(p.parts[0].body.find("host mx.remote.example said: 550 5.1.1"), std::string::npos);
}

TEST(Bounce, MalformedStatusFallsBackToClassDefault) {
  Fixture f;
  f.meta = makeMeta({{"a@example.test", "DELAY,FAILURE", ""}, {"b@example.test", "DELAY", ""}});
  BounceRecipient d = delayedRcpt("b@example.test");
  d.status = "4.2";
  Parsed p = parse(f.run({failedRcpt("a@example.test", "5.1.1.1")}, {d}).bounce);
  ASSERT_EQ(p.status.size(), 3u);
  EXPECT_EQ(p.status[1].field("status"), "5.0.0");
  EXPECT_EQ(p.status[2].field("status"), "4.0.0");
}

TEST(Bounce, NullSenderIsNeverBounced) {
  Fixture f;
  f.meta.envelope.mail_from = "";
  f.options.guard = BounceGuard::kAlways;
  BounceOutcome o = f.run({failedRcpt("user@example.test")});
  EXPECT_FALSE(o.send);
  EXPECT_NE(o.reason.find("null sender"), std::string::npos) << o.reason;
}

TEST(Bounce, NothingToReport) {
  Fixture f;
  EXPECT_FALSE(f.run({}).send);
}

TEST(Bounce, NotifyRules) {
  struct Case {
    std::string notify;
    bool failure_dsn;
    bool delay_dsn;
  } cases[] = {
      {"", true, false},
      {"NEVER", false, false},
      {"SUCCESS", false, false},
      {"FAILURE", true, false},
      {"failure", true, false},
      {"DELAY", false, true},
      {"SUCCESS,DELAY", false, true},
      {"SUCCESS,FAILURE,DELAY", true, true},
      {"DELAY , FAILURE", true, true},
  };
  for (const Case& c : cases) {
    Fixture f;
    f.meta = makeMeta({{"user@example.test", c.notify, ""}});
    EXPECT_EQ(f.run({failedRcpt("user@example.test")}).send, c.failure_dsn) << c.notify;
    BounceOutcome d = f.run({}, {delayedRcpt("user@example.test")});
    EXPECT_EQ(d.send, c.delay_dsn) << c.notify;
    if (!d.send) {
      EXPECT_NE(d.reason.find("NOTIFY"), std::string::npos) << d.reason;
    }
  }
}

TEST(Bounce, OnlyRecipientsThatAskedAreReported) {
  Fixture f;
  f.meta = makeMeta({{"a@example.test", "NEVER", ""},
                     {"b@example.test", "", ""},
                     {"c@example.test", "DELAY", ""},
                     {"d@example.test", "", ""}});
  BounceOutcome o = f.run({failedRcpt("a@example.test"), failedRcpt("b@example.test")},
                          {delayedRcpt("c@example.test"), delayedRcpt("d@example.test")});
  ASSERT_TRUE(o.send);
  EXPECT_EQ(o.bounce.reported, (std::vector<std::string>{"b@example.test", "c@example.test"}));
  EXPECT_EQ(o.reason,
            "failure DSN for 1 recipient(s) and delay warning for 1 recipient(s) to "
            "<sender@origin.example>");
  Parsed p = parse(o.bounce);
  ASSERT_EQ(p.status.size(), 3u);
  EXPECT_EQ(p.status[1].field("action"), "failed");
  EXPECT_EQ(p.status[2].field("action"), "delayed");
  // A failure outranks the delay in the subject.
  EXPECT_EQ(p.top.field("subject"), "Undelivered Mail Returned to Sender");
  EXPECT_EQ(p.parts[0].body.find("a@example.test"), std::string::npos);
}

TEST(Bounce, DelayWarning) {
  Fixture f;
  f.meta = makeMeta({{"user@example.test", "DELAY", ""}});
  f.meta.envelope.ret = "FULL";
  BounceOutcome o = f.run({}, {delayedRcpt("user@example.test")});
  ASSERT_TRUE(o.send) << o.reason;
  Parsed p = parse(o.bounce);
  EXPECT_EQ(p.top.field("subject"), "Delayed Mail (still being retried)");
  EXPECT_EQ(p.top.field("message-id"), "<1700000120000.Q1234ABCD.D@mx.example.test>");
  ASSERT_EQ(p.status.size(), 2u);
  EXPECT_EQ(p.status[1].field("action"), "delayed");
  EXPECT_EQ(p.status[1].field("status"), "4.2.2");
  EXPECT_EQ(p.status[1].field("will-retry-until"), "Sun, 19 Nov 2023 22:13:20 +0000");
  EXPECT_NE(p.parts[0].body.find("until Sun, 19 Nov 2023 22:13:20"), std::string::npos)
      << p.parts[0].body;
  // RET=FULL applies to failures; a warning carries the headers only.
  EXPECT_EQ(p.parts[2].field("content-type"), "text/rfc822-headers");
}

TEST(Bounce, RetHeadersIsTheDefault) {
  for (std::string ret : {"", "HDRS", "hdrs"}) {
    Fixture f;
    f.meta.envelope.ret = ret;
    Parsed p = parse(f.run({failedRcpt("user@example.test")}).bounce);
    ASSERT_EQ(p.parts.size(), 3u);
    EXPECT_EQ(p.parts[2].field("content-type"), "text/rfc822-headers") << ret;
    EXPECT_NE(p.parts[2].body.find("Subject: hello\r\n"), std::string::npos);
    EXPECT_EQ(p.parts[2].body.find("The body line"), std::string::npos) << ret;
    EXPECT_NE(p.parts[0].body.find("header section of the message is attached"), std::string::npos);
  }
}

TEST(Bounce, RetFullReturnsTheWholeMessage) {
  Fixture f;
  f.meta.envelope.ret = "FULL";
  Parsed p = parse(f.run({failedRcpt("user@example.test")}).bounce);
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_EQ(p.parts[2].field("content-type"), "message/rfc822");
  EXPECT_EQ(p.parts[2].field("content-transfer-encoding"), "<absent>");
  // The part body is exactly the original, final CRLF included.
  std::string part2;
  {
    BounceOutcome o = f.run({failedRcpt("user@example.test")});
    size_t start = o.bounce.message.find("Content-Type: message/rfc822\r\n\r\n");
    ASSERT_NE(start, std::string::npos);
    part2 = o.bounce.message.substr(start + 32);
  }
  EXPECT_EQ(part2.substr(0, kOriginal.size()), kOriginal);
  EXPECT_EQ(part2.compare(kOriginal.size(), 4, "\r\n--"), 0);
  EXPECT_NE(p.parts[0].body.find("The message is attached"), std::string::npos);
}

TEST(Bounce, RetFullOverTheLimitReturnsHeaders) {
  Fixture f;
  f.meta.envelope.ret = "FULL";
  f.message = kOriginal + std::string(2000, 'x') + "\r\n";
  f.options.max_original = 1024;
  Parsed p = parse(f.run({failedRcpt("user@example.test")}).bounce);
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_EQ(p.parts[2].field("content-type"), "text/rfc822-headers");
  EXPECT_EQ(p.parts[2].body.find("xxxx"), std::string::npos);
  EXPECT_NE(p.parts[0].body.find("larger than 1024 bytes"), std::string::npos) << p.parts[0].body;

  f.options.max_original = 0;  // never the whole message
  f.message = kOriginal;
  p = parse(f.run({failedRcpt("user@example.test")}).bounce);
  EXPECT_EQ(p.parts[2].field("content-type"), "text/rfc822-headers");
}

TEST(Bounce, LineEndsAreCrlfOnlyWhateverTheOriginal) {
  Fixture f;
  f.meta.envelope.ret = "FULL";
  f.message = "Subject: bare\nX-A: cr\rX-B: ok\r\n\r\nbody\nmore\rend";
  BounceOutcome o = f.run({failedRcpt("user@example.test")});
  expectCrlfOnly(o.bounce.message);
  EXPECT_NE(o.bounce.message.find("body\r\nmore\r\nend\r\n"), std::string::npos);
}

TEST(Bounce, HeaderInjectionIsNeutralised) {
  Fixture f;
  f.options.guard = BounceGuard::kAlways;
  f.meta = makeMeta({{"user@example.test", "", "rfc822;x+0D+0ABcc:+20victim@evil.example"}});
  f.meta.envelope.mail_from = "sender@origin.example\r\nBcc: victim@evil.example";
  f.meta.envelope.envid = "id+0D+0ABcc:+20victim@evil.example";
  BounceRecipient r = failedRcpt("user@example.test\r\nBcc: victim@evil.example", "5.1.1",
                                 "550 no\r\nBcc: victim@evil.example\r\n\r\nbody");
  r.envelope_index = 0;
  r.remote_mta = "mx.remote.example\r\nBcc: victim@evil.example";
  f.meta.queue_id = "Q1\r\nBcc: x";
  f.message = kOriginal;
  BounceOutcome o = f.run({r});
  ASSERT_TRUE(o.send) << o.reason;
  expectCrlfOnly(o.bounce.message);
  std::string m = "\r\n" + o.bounce.message;
  EXPECT_EQ(m.find("\r\nBcc:"), std::string::npos) << o.bounce.message;
  Parsed p = parse(o.bounce);
  ASSERT_EQ(p.parts.size(), 3u);
  ASSERT_EQ(p.status.size(), 2u) << p.parts[1].body;
  EXPECT_EQ(p.top.fields.count("bcc"), 0u);
  EXPECT_EQ(p.status[1].fields.count("bcc"), 0u);
  EXPECT_EQ(p.status[1].field("diagnostic-code"), "smtp; 550 no Bcc: victim@evil.example body");
  EXPECT_EQ(p.status[1].field("original-recipient"), "rfc822; x Bcc: victim@evil.example");
  EXPECT_EQ(p.top.field("to"), "<sender@origin.exampleBcc:victim@evil.example>");
}

TEST(Bounce, LongFieldsAreFolded) {
  Fixture f;
  std::string diag = "550 5.1.1";
  for (int i = 0; i < 60; ++i) diag += " word" + std::to_string(i);
  BounceOutcome o = f.run({failedRcpt("user@example.test", "5.1.1", diag)});
  ASSERT_TRUE(o.send);
  // Our own lines (everything but the returned original) fit in 78 columns.
  std::string ours =
      o.bounce.message.substr(0, o.bounce.message.find("Content-Description: Undelivered"));
  EXPECT_LE(longestLine(ours), 78u) << ours;
  Parsed p = parse(o.bounce);
  EXPECT_EQ(p.status[1].field("diagnostic-code"), "smtp; " + diag);
}

TEST(Bounce, BoundaryNeverOccursInTheContent) {
  Fixture f;
  f.meta.envelope.ret = "FULL";
  // An original that quotes boundaries of the form we use.
  std::string fake;
  for (int i = 0; i < 50; ++i)
    fake += "--=_mxgate_Q1234ABCD_" + std::string(16, static_cast<char>('0' + i % 10)) + "\r\n";
  f.message = kOriginal + fake;
  BounceOutcome o = f.run({failedRcpt("user@example.test")});
  ASSERT_TRUE(o.send);
  Parsed p = parse(o.bounce);
  std::string b = boundaryOf(p.top);
  ASSERT_FALSE(b.empty());
  ASSERT_EQ(p.parts.size(), 3u);
  for (const Entity& part : p.parts) EXPECT_EQ(part.body.find("--" + b), std::string::npos);
  // Exactly three delimiters and one close delimiter.
  size_t n = 0;
  for (size_t at = o.bounce.message.find("\r\n--" + b); at != std::string::npos;
       at = o.bounce.message.find("\r\n--" + b, at + 1))
    ++n;
  EXPECT_EQ(n, 4u);
  EXPECT_NE(o.bounce.message.find("\r\n--" + b + "--\r\n"), std::string::npos);
}

TEST(Bounce, EightBitOriginalWithoutSmtputf8) {
  Fixture f;
  f.meta.envelope.ret = "FULL";
  f.message =
      "Subject: caf\xc3\xa9\r\n\r\nGr\xc3\xbc\xc3\x9f"
      "e\r\n";
  BounceOutcome o =
      f.run({failedRcpt("user@example.test", "5.1.1", "550 5.1.1 unbekannt \xc3\xbc")});
  ASSERT_TRUE(o.send);
  EXPECT_TRUE(o.bounce.eight_bit);
  EXPECT_FALSE(o.bounce.smtputf8);
  Parsed p = parse(o.bounce);
  EXPECT_EQ(p.parts[2].field("content-type"), "message/rfc822");
  EXPECT_EQ(p.parts[2].field("content-transfer-encoding"), "8bit");
  EXPECT_EQ(p.parts[1].field("content-type"), "message/delivery-status");
  // 8-bit bytes in report fields are not allowed outside RFC 6533 reports.
  EXPECT_EQ(p.status[1].field("diagnostic-code"), "smtp; 550 5.1.1 unbekannt ??");
  // The top-level header section and the notification stay ASCII.
  std::string head = o.bounce.message.substr(0, o.bounce.message.find("\r\n\r\n"));
  EXPECT_EQ(head.find('\xc3'), std::string::npos) << head;
  EXPECT_EQ(p.parts[0].field("content-transfer-encoding"), "<absent>");
}

TEST(Bounce, Smtputf8UsesGlobalTypes) {
  Fixture f;
  f.meta.envelope.smtputf8 = true;
  f.meta.envelope.mail_from = "j\xc3\xbcrgen@origin.example";
  f.meta.envelope.rcpts = {{"\xc3\xbcser@example.test", "", "utf-8;\xc3\xbcser@example.test"}};
  f.meta.envelope.ret = "FULL";
  f.message =
      "Subject: Gr\xc3\xbc\xc3\x9f"
      "e\r\n\r\nbody\r\n";
  BounceOutcome o = f.run({failedRcpt("\xc3\xbcser@example.test")});
  ASSERT_TRUE(o.send) << o.reason;
  EXPECT_TRUE(o.bounce.smtputf8);
  EXPECT_TRUE(o.bounce.eight_bit);
  expectCrlfOnly(o.bounce.message);
  Parsed p = parse(o.bounce);
  EXPECT_EQ(p.top.field("to"), "<j\xc3\xbcrgen@origin.example>");
  EXPECT_EQ(p.parts[1].field("content-type"), "message/global-delivery-status");
  EXPECT_EQ(p.parts[2].field("content-type"), "message/global");
  EXPECT_EQ(p.status[1].field("final-recipient"), "utf-8; \xc3\xbcser@example.test");
  EXPECT_EQ(p.status[1].field("original-recipient"), "utf-8; \xc3\xbcser@example.test");

  f.meta.envelope.ret = "";
  p = parse(f.run({failedRcpt("\xc3\xbcser@example.test")}).bounce);
  EXPECT_EQ(p.parts[2].field("content-type"), "message/global-headers");
}

TEST(Bounce, DeliveryReportWithNonNullSenderIsNotAnswered) {
  Fixture f;
  f.message =
      "From: MAILER-DAEMON@elsewhere.example\r\n"
      "Content-Type: multipart/report; report-type=\"delivery-status\";\r\n"
      "\tboundary=\"x\"\r\n\r\n--x--\r\n";
  BounceOutcome o = f.run({failedRcpt("user@example.test")});
  EXPECT_FALSE(o.send);
  EXPECT_NE(o.reason.find("delivery report"), std::string::npos);
  // Auto-Submitted alone does not stop a DSN (RFC 3834 is about auto-replies).
  f.message = "Auto-Submitted: auto-generated\r\nSubject: list mail\r\n\r\nbody\r\n";
  EXPECT_TRUE(f.run({failedRcpt("user@example.test")}).send);
}

TEST(Bounce, BackscatterGuard) {
  Fixture f;
  f.meta.symbols = "SPF_PASS(0.00)[origin.example] LIST_ALLOW_IP(-20.00)";
  EXPECT_TRUE(f.run({failedRcpt("user@example.test")}).send);
  f.meta.symbols = "LIST_ALLOW_IP(-20.00)[a] SPF_PASS(-1.00)";
  EXPECT_TRUE(f.run({failedRcpt("user@example.test")}).send);
  for (std::string trace :
       {"", "SPF_FAIL(5.00)", "SPF_PASSX(0.00)", "X(1.00)[SPF_PASS(0.00)]",
        "X(1.00)[a [b] SPF_PASS(0.00)]", "LIST_DENY_SENDER(20.00)[ SPF_PASS]"}) {
    f.meta.symbols = trace;
    BounceOutcome o = f.run({failedRcpt("user@example.test")});
    EXPECT_FALSE(o.send) << trace;
    EXPECT_NE(o.reason.find("spf_pass"), std::string::npos) << o.reason;
  }
  f.options.guard = BounceGuard::kAlways;
  EXPECT_TRUE(f.run({failedRcpt("user@example.test")}).send);
  f.options.guard = BounceGuard::kNever;
  f.meta.symbols = "SPF_PASS(0.00)";
  BounceOutcome o = f.run({failedRcpt("user@example.test")});
  EXPECT_FALSE(o.send);
  EXPECT_NE(o.reason.find("never"), std::string::npos);
}

TEST(Bounce, GuardNames) {
  BounceGuard g{};
  for (BounceGuard want : {BounceGuard::kSpfPass, BounceGuard::kAlways, BounceGuard::kNever}) {
    ASSERT_TRUE(parseBounceGuard(bounceGuardName(want), &g));
    EXPECT_EQ(g, want);
  }
  EXPECT_FALSE(parseBounceGuard("sometimes", &g));
}

TEST(Bounce, XtextDecode) {
  EXPECT_EQ(xtextDecode("abc+2Bdef"), "abc+def");
  EXPECT_EQ(xtextDecode("a+3db"), "a=b");
  EXPECT_EQ(xtextDecode("plain"), "plain");
  EXPECT_EQ(xtextDecode("end+"), "end+");
  EXPECT_EQ(xtextDecode("end+4"), "end+4");
  EXPECT_EQ(xtextDecode("bad+ZZ"), "bad+ZZ");
  EXPECT_EQ(xtextDecode("+0D+0A"), "\r\n");
}

TEST(Bounce, TraceHasSymbol) {
  EXPECT_TRUE(traceHasSymbol("SPF_PASS(0.00)", "SPF_PASS"));
  EXPECT_TRUE(traceHasSymbol("A(1.00)[x y] SPF_PASS(0.00)[d]", "SPF_PASS"));
  EXPECT_FALSE(traceHasSymbol("A(1.00)[SPF_PASS(0.00)]", "SPF_PASS"));
  EXPECT_FALSE(traceHasSymbol("SPF_PASSED(0.00)", "SPF_PASS"));
  EXPECT_FALSE(traceHasSymbol("", "SPF_PASS"));
}

// Writes sample bounces for tests/e2e/test_bounce_format.py, which parses them
// with Python's email package; skipped unless MXGATE_BOUNCE_SAMPLES names a directory.
TEST(BounceSamples, Write) {
  const char* dir = std::getenv("MXGATE_BOUNCE_SAMPLES");
  if (dir == nullptr) GTEST_SKIP() << "MXGATE_BOUNCE_SAMPLES not set";
  auto write = [&](const std::string& name, const BounceOutcome& o) {
    ASSERT_TRUE(o.send) << name << ": " << o.reason;
    std::ofstream(std::filesystem::path(dir) / name, std::ios::binary) << o.bounce.message;
  };
  Fixture f;
  f.meta = makeMeta({{"user@example.test", "", "rfc822;orig@example.test"},
                     {"late@example.test", "DELAY,FAILURE", ""}});
  f.meta.envelope.envid = "env+2B1";
  write("headers.eml",
        f.run({failedRcpt("user@example.test")}, {delayedRcpt("late@example.test")}));
  f.meta.envelope.ret = "FULL";
  write("full.eml", f.run({failedRcpt("user@example.test")}));
  write("delay.eml", f.run({}, {delayedRcpt("late@example.test")}));
  f.meta.envelope.smtputf8 = true;
  f.meta.envelope.mail_from = "j\xc3\xbcrgen@origin.example";
  f.message =
      "Subject: Gr\xc3\xbc\xc3\x9f"
      "e\r\n\r\nbody\r\n";
  write("utf8.eml", f.run({failedRcpt("user@example.test")}));
}

}  // namespace
}  // namespace mxgate
