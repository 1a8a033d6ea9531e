#include "gateway/smtp/header_scan.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace mxgate::smtp {
namespace {

struct Scan {
  std::vector<HeaderField> fields;
  size_t body = 0;
};

Scan scanAll(std::string_view message) {
  Scan s;
  s.body = scanHeaders(message, [&](const HeaderField& f) {
    s.fields.push_back(f);
    return true;
  });
  return s;
}

TEST(ScanHeaders, FieldsValuesAndBodyOffset) {
  const std::string m = "From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n";
  Scan s = scanAll(m);
  ASSERT_EQ(s.fields.size(), 2u);
  EXPECT_EQ(s.fields[0].name, "From");
  EXPECT_EQ(s.fields[0].value, " a@example.org");
  EXPECT_EQ(s.fields[1].name, "Subject");
  EXPECT_EQ(s.fields[1].value, " hello");
  EXPECT_EQ(s.body, m.find("body"));
}

TEST(ScanHeaders, ValueOffsetsPointIntoTheMessage) {
  const std::string m = "A: 1\r\nLonger-Name:value two\r\nC:\r\n\r\n";
  Scan s = scanAll(m);
  ASSERT_EQ(s.fields.size(), 3u);
  for (const HeaderField& f : s.fields) {
    EXPECT_EQ(m.substr(f.value_offset, f.value.size()), f.value) << f.name;
    EXPECT_EQ(f.value.data(), m.data() + f.value_offset) << f.name;
    EXPECT_EQ(m[f.value_offset - 1], ':') << f.name;
  }
  EXPECT_EQ(s.fields[1].value, "value two");
  EXPECT_EQ(s.fields[2].value, "");
}

TEST(ScanHeaders, FoldedFieldsAreOneField) {
  const std::string m = "Subject: a\r\n b\r\n\tc\r\nX: y\r\n\r\nbody";
  Scan s = scanAll(m);
  ASSERT_EQ(s.fields.size(), 2u);
  EXPECT_EQ(s.fields[0].name, "Subject");
  EXPECT_EQ(s.fields[0].value, " a\r\n b\r\n\tc");
  EXPECT_EQ(s.fields[1].name, "X");
  EXPECT_EQ(s.fields[1].value, " y");
  EXPECT_EQ(s.body, m.size() - 4);
}

TEST(ScanHeaders, StopsAtTheBlankLine) {
  const std::string m = "A: 1\r\n\r\nB: 2\r\nC: 3\r\n";
  Scan s = scanAll(m);
  ASSERT_EQ(s.fields.size(), 1u);
  EXPECT_EQ(s.fields[0].name, "A");
  EXPECT_EQ(s.body, 8u);
  EXPECT_EQ(countHeader(m, "B"), 0u);
}

TEST(ScanHeaders, MessageWithoutBody) {
  const std::string m = "A: 1\r\nB: 2\r\n";
  Scan s = scanAll(m);
  EXPECT_EQ(s.fields.size(), 2u);
  EXPECT_EQ(s.body, m.size());
  // Without a final line end either.
  Scan t = scanAll("A: 1\r\nB: 2");
  ASSERT_EQ(t.fields.size(), 2u);
  EXPECT_EQ(t.fields[1].value, " 2");
  EXPECT_EQ(t.body, 10u);
  EXPECT_EQ(scanAll("").body, 0u);
}

TEST(ScanHeaders, NonHeaderFirstLineEndsTheHeaderAtOnce) {
  for (std::string_view m : {"not a header\r\nA: 1\r\n\r\n", "From a@b Mon Jan 1\r\nA: 1\r\n",
                             ": no name\r\n", "NoColonHere\r\n"}) {
    Scan s = scanAll(m);
    EXPECT_TRUE(s.fields.empty()) << m;
    EXPECT_EQ(s.body, 0u) << m;
  }
  // A body-less message that starts with the blank line.
  Scan b = scanAll("\r\nbody");
  EXPECT_TRUE(b.fields.empty());
  EXPECT_EQ(b.body, 2u);
}

TEST(ScanHeaders, NonHeaderLineAfterFieldsStopsThere) {
  const std::string m = "A: 1\r\ngarbage line\r\nB: 2\r\n";
  Scan s = scanAll(m);
  ASSERT_EQ(s.fields.size(), 1u);
  EXPECT_EQ(s.body, 6u);
}

TEST(ScanHeaders, BareLfLineEnds) {
  const std::string m = "A: 1\nB: 2\n\nbody";
  Scan s = scanAll(m);
  ASSERT_EQ(s.fields.size(), 2u);
  EXPECT_EQ(s.fields[0].value, " 1");
  EXPECT_EQ(s.fields[1].value, " 2");
  EXPECT_EQ(s.body, m.find("body"));
}

TEST(ScanHeaders, CallbackCanStopEarly) {
  const std::string m = "A: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  int seen = 0;
  size_t end = scanHeaders(m, [&](const HeaderField& f) {
    ++seen;
    return f.name != "B";
  });
  EXPECT_EQ(seen, 2);
  EXPECT_EQ(end, 12u) << "offset after the field the callback stopped at";
}

TEST(CountHeader, IsCaseInsensitive) {
  const std::string m =
      "Received: a\r\nreceived: b\r\n  folded\r\nRECEIVED: c\r\nX-Received: d\r\nReceived-SPF: "
      "e\r\n"
      "\r\nReceived: in the body\r\n";
  EXPECT_EQ(countHeader(m, "Received"), 3u);
  EXPECT_EQ(countHeader(m, "received"), 3u);
  EXPECT_EQ(countHeader(m, "x-received"), 1u);
  EXPECT_EQ(countHeader(m, "Receive"), 0u);
  EXPECT_EQ(countHeader(m, "Subject"), 0u);
}

}  // namespace
}  // namespace mxgate::smtp
