#include "gateway/smtp/data_reader.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>

namespace mxgate::smtp {
namespace {

struct ReadOutcome {
  std::string content;
  size_t consumed = 0;  // bytes taken from the input, up to and including the end
  bool done = false;
  bool bare_lf = false;
  bool bare_cr = false;
  bool oversize = false;
  uint64_t content_size = 0;
};

// Feeds input in the given chunk sizes (the last chunk takes the rest) and
// stops at the end of data, as the session does.
ReadOutcome readChunked(std::string_view input, const std::vector<size_t>& chunks,
                        BareNewline mode = BareNewline::kReject, uint64_t max_size = 0) {
  ReadOutcome o;
  DataReader r(&o.content, max_size, mode);
  size_t pos = 0;
  size_t k = 0;
  while (pos < input.size() && !r.done()) {
    size_t n = k < chunks.size() ? chunks[k++] : input.size() - pos;
    n = std::min(n, input.size() - pos);
    size_t used = r.feed(input.substr(pos, n));
    EXPECT_TRUE(used == n || r.done()) << "a reader that is not done must take the whole chunk";
    pos += used;
  }
  o.consumed = pos;
  o.done = r.done();
  o.bare_lf = r.sawBareLf();
  o.bare_cr = r.sawBareCr();
  o.oversize = r.oversize();
  o.content_size = r.contentSize();
  return o;
}

ReadOutcome readAll(std::string_view input, BareNewline mode = BareNewline::kReject,
                    uint64_t max_size = 0) {
  return readChunked(input, {input.size()}, mode, max_size);
}

ReadOutcome readBytewise(std::string_view input, BareNewline mode = BareNewline::kReject) {
  return readChunked(input, std::vector<size_t>(input.size(), 1), mode);
}

void expectSame(const ReadOutcome& a, const ReadOutcome& b, const std::string& what) {
  EXPECT_EQ(a.content, b.content) << what;
  EXPECT_EQ(a.consumed, b.consumed) << what;
  EXPECT_EQ(a.done, b.done) << what;
  EXPECT_EQ(a.bare_lf, b.bare_lf) << what;
  EXPECT_EQ(a.bare_cr, b.bare_cr) << what;
}

TEST(DataReader, SimpleMessage) {
  const std::string input = "Subject: hi\r\n\r\nHello.\r\n.\r\n";
  ReadOutcome o = readAll(input);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.content, "Subject: hi\r\n\r\nHello.\r\n");
  EXPECT_EQ(o.consumed, input.size());
  EXPECT_FALSE(o.bare_lf);
  EXPECT_FALSE(o.bare_cr);
  EXPECT_FALSE(o.oversize);
  EXPECT_EQ(o.content_size, o.content.size());
}

TEST(DataReader, EmptyMessageEndsAtOnce) {
  ReadOutcome o = readAll(".\r\n");
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.content, "");
  EXPECT_EQ(o.consumed, 3u);
}

TEST(DataReader, IncompleteInputIsNotDone) {
  for (std::string_view in : {"abc", "abc\r\n", "abc\r\n.", "abc\r\n.\r"}) {
    ReadOutcome o = readAll(in);
    EXPECT_FALSE(o.done) << in;
    EXPECT_EQ(o.consumed, in.size()) << in;
  }
}

TEST(DataReader, DotUnstuffingIsExact) {
  EXPECT_EQ(readAll("..x\r\n.\r\n").content, ".x\r\n");
  EXPECT_EQ(readAll("...\r\n.\r\n").content, "..\r\n");
  EXPECT_EQ(readAll("..\r\n.\r\n").content, ".\r\n");
  EXPECT_EQ(readAll(". x\r\n.\r\n").content, " x\r\n");
  // Only a dot at the start of a line is stuffing.
  EXPECT_EQ(readAll("a.b..\r\nx.\r\n.\r\n").content, "a.b..\r\nx.\r\n");
  EXPECT_EQ(readAll("a\r\n..\r\n..b\r\n.\r\n").content, "a\r\n.\r\n.b\r\n");
}

TEST(DataReader, LoneDotEndsOnlyWithCrlf) {
  // ".x" or ". " lines are content, not the end.
  ReadOutcome o = readAll("a\r\n.x\r\n. \r\n.\r\nrest");
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.content, "a\r\nx\r\n \r\n");
  // A dot line ended by a bare LF or CR does not end the data.
  ReadOutcome lf = readAll("a\r\n.\nb\r\n.\r\n");
  EXPECT_TRUE(lf.done);
  EXPECT_EQ(lf.consumed, 11u);
  EXPECT_TRUE(lf.bare_lf);
  ReadOutcome cr = readAll("a\r\n.\rb\r\n.\r\n");
  EXPECT_TRUE(cr.done);
  EXPECT_EQ(cr.consumed, 11u);
  EXPECT_TRUE(cr.bare_cr);
  // A dot not at a line start never ends the data.
  EXPECT_FALSE(readAll("a.\r\n").done);
  EXPECT_FALSE(readAll("a\r\nb.\r\n").done);
}

TEST(DataReader, BytesAfterTheEndAreNotConsumed) {
  const std::string data = "Subject: x\r\n\r\nbody\r\n.\r\n";
  const std::string next = "MAIL FROM:<next@example.org>\r\nRCPT TO:<a@b.example>\r\n";
  const std::string input = data + next;
  std::string out;
  DataReader reader(&out, 0, BareNewline::kReject);
  EXPECT_EQ(reader.feed(input), data.size());
  EXPECT_TRUE(reader.done());
  EXPECT_EQ(out, "Subject: x\r\n\r\nbody\r\n");
  // Once done, further input is left alone.
  EXPECT_EQ(reader.feed(next), 0u);
  EXPECT_EQ(out, "Subject: x\r\n\r\nbody\r\n");
}

TEST(DataReader, EveryByteSplitGivesTheSameResult) {
  const std::string next = "MAIL FROM:<>\r\n";
  const std::string input =
      "Subject: split\r\n\r\n..stuffed\r\n...\r\nline.\r\n. \r\n\r\n..\r\nend\r\n.\r\n" + next;
  const ReadOutcome whole = readAll(input);
  ASSERT_TRUE(whole.done);
  EXPECT_EQ(whole.consumed, input.size() - next.size());
  EXPECT_EQ(whole.content,
            "Subject: split\r\n\r\n.stuffed\r\n..\r\nline.\r\n \r\n\r\n.\r\nend\r\n");
  // One byte at a time.
  expectSame(readBytewise(input), whole, "bytewise");
  // Every split into two pieces.
  for (size_t cut = 0; cut <= input.size(); ++cut)
    expectSame(readChunked(input, {cut}), whole, "cut at " + std::to_string(cut));
  // Random chunkings.
  std::mt19937 rng(20240917);
  for (int round = 0; round < 200; ++round) {
    std::vector<size_t> chunks;
    std::uniform_int_distribution<size_t> len(0, 7);
    for (size_t total = 0; total < input.size();) {
      chunks.push_back(len(rng));
      total += chunks.back();
    }
    expectSame(readChunked(input, chunks), whole, "random round " + std::to_string(round));
  }
}

TEST(DataReader, SplitsWithBareNewlinesMatchInBothModes) {
  const std::string input = "a\nb\rc\r\n.\n.\r\r\n\n.\r\n.x\r\n.\r\n";
  for (BareNewline mode : {BareNewline::kReject, BareNewline::kNormalize}) {
    const ReadOutcome whole = readAll(input, mode);
    ASSERT_TRUE(whole.done);
    EXPECT_EQ(whole.consumed, input.size());
    expectSame(readBytewise(input, mode), whole, "bytewise");
    for (size_t cut = 0; cut <= input.size(); ++cut)
      expectSame(readChunked(input, {cut}, mode), whole, "cut at " + std::to_string(cut));
  }
}

TEST(DataReader, NormalizeModeStoresBareLfAsCrlf) {
  ReadOutcome o = readAll("a\nb\r\n.\r\n", BareNewline::kNormalize);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.content, "a\r\nb\r\n");
  EXPECT_TRUE(o.bare_lf);
  EXPECT_FALSE(o.bare_cr);
  // Reject mode keeps the bytes as they came and flags them.
  ReadOutcome r = readAll("a\nb\r\n.\r\n", BareNewline::kReject);
  EXPECT_EQ(r.content, "a\nb\r\n");
  EXPECT_TRUE(r.bare_lf);
}

TEST(DataReader, NormalizeModeNeverEndsOnALineBegunByBareLf) {
  ReadOutcome o = readAll("a\n.\r\nb\r\n.\r\n", BareNewline::kNormalize);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.consumed, 11u);
  EXPECT_EQ(o.content, "a\r\n.\r\nb\r\n");
  // Stuffing still applies on such a line.
  EXPECT_EQ(readAll("a\n..x\r\n.\r\n", BareNewline::kNormalize).content, "a\r\n.x\r\n");
}

TEST(DataReader, SizeLimitCapsOutputButFindsTheEnd) {
  std::string body;
  for (int i = 0; i < 100; ++i) body += "line " + std::to_string(i) + " of the message\r\n";
  const std::string input = body + ".\r\nQUIT\r\n";
  const uint64_t limit = 256;
  for (bool bytewise : {false, true}) {
    std::vector<size_t> chunks =
        bytewise ? std::vector<size_t>(input.size(), 1) : std::vector<size_t>{input.size()};
    ReadOutcome o = readChunked(input, chunks, BareNewline::kReject, limit);
    EXPECT_TRUE(o.done);
    EXPECT_EQ(o.consumed, body.size() + 3);
    EXPECT_TRUE(o.oversize);
    EXPECT_LE(o.content.size(), limit);
    EXPECT_EQ(body.compare(0, o.content.size(), o.content), 0) << "output is a prefix";
    EXPECT_EQ(o.content_size, body.size());
  }
  // Exactly at the limit is not oversize.
  ReadOutcome exact = readAll("12345678\r\n.\r\n", BareNewline::kReject, 10);
  EXPECT_TRUE(exact.done);
  EXPECT_FALSE(exact.oversize);
  EXPECT_EQ(exact.content, "12345678\r\n");
  ReadOutcome over = readAll("123456789\r\n.\r\n", BareNewline::kReject, 10);
  EXPECT_TRUE(over.done);
  EXPECT_TRUE(over.oversize);
}

// --- SMTP smuggling corpus -------------------------------------------------

std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    switch (s[++i]) {
      case 'r':
        out += '\r';
        break;
      case 'n':
        out += '\n';
        break;
      case '0':
        out += '\0';
        break;
      case 't':
        out += '\t';
        break;
      case '\\':
        out += '\\';
        break;
      default:
        ADD_FAILURE() << "unknown escape \\" << s[i] << " in " << s;
    }
  }
  return out;
}

bool hasBareCr(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return true;
  return false;
}

bool hasBareLf(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return true;
  return false;
}

struct SmugglingRow {
  std::string name;
  std::string sequence;
};

std::vector<SmugglingRow> loadSmugglingRows(const std::string& path) {
  std::vector<SmugglingRow> rows;
  std::ifstream in(path);
  std::string line;
  bool header_seen = false;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (!header_seen) {
      header_seen = true;  // "name\tsequence\tinbound\toutbound"
      continue;
    }
    std::vector<std::string> cols;
    std::stringstream ss(line);
    for (std::string col; std::getline(ss, col, '\t');) cols.push_back(col);
    if (cols.size() < 2) {
      ADD_FAILURE() << "malformed row: " << line;
      continue;
    }
    rows.push_back({cols[0], unescape(cols[1])});
  }
  return rows;
}

int currentTestParts() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
}

TEST(DataReaderSmuggling, EveryCorpusSequenceIsHeld) {
  const std::string path = std::string(MXGATE_SOURCE_DIR) + "/../shared/corpora/smtp/smuggling.tsv";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "smuggling corpus not found at " << path;
  const std::vector<SmugglingRow> rows = loadSmugglingRows(path);
  ASSERT_FALSE(rows.empty()) << path << " has no rows";

  const std::string prefix = "Subject: x\r\n\r\nbefore";
  const std::string smuggled = "MAIL FROM:<evil@x>\r\n";
  const std::string real_end = "\r\n.\r\n";
  size_t held = 0;
  for (const SmugglingRow& row : rows) {
    SCOPED_TRACE("row " + row.name);
    const std::string input = prefix + row.sequence + smuggled + real_end;
    const std::string trailing = "RSET\r\n";  // a pipelined next command
    const bool bare_cr = hasBareCr(input);
    const bool bare_lf = hasBareLf(input);
    // Test parts are recorded only for failures: a row held if it added none.
    const int parts_before = currentTestParts();
    for (BareNewline mode : {BareNewline::kReject, BareNewline::kNormalize}) {
      SCOPED_TRACE(mode == BareNewline::kReject ? "reject mode" : "normalize mode");
      // Fed byte by byte, the reader must not finish before the last byte of
      // the real end.
      std::string out;
      DataReader r(&out, 0, mode);
      for (size_t i = 0; i < input.size(); ++i) {
        if (r.done()) {
          ADD_FAILURE() << "finished early, before byte " << i << " of " << input.size();
          break;
        }
        EXPECT_EQ(r.feed(std::string_view(input).substr(i, 1)), 1u) << "at byte " << i;
      }
      EXPECT_TRUE(r.done());
      // Fed at once with a command behind it, it stops exactly at the real end.
      ReadOutcome o = readAll(input + trailing, mode);
      EXPECT_TRUE(o.done);
      EXPECT_EQ(o.consumed, input.size());
      EXPECT_EQ(o.content, out);
      EXPECT_NE(o.content.find(smuggled), std::string::npos) << "the smuggled command is content";
      EXPECT_EQ(o.bare_cr, bare_cr);
      EXPECT_EQ(o.bare_lf, bare_lf);
      if (mode == BareNewline::kNormalize && bare_lf && !bare_cr) {
        // Accepted: every line end in the content is CRLF.
        EXPECT_FALSE(hasBareLf(o.content)) << o.content;
        EXPECT_FALSE(hasBareCr(o.content)) << o.content;
      }
    }
    if (currentTestParts() == parts_before) ++held;
  }
  std::cout << "smuggling.tsv: " << held << " of " << rows.size() << " sequences held\n";
  EXPECT_EQ(held, rows.size());
}

}  // namespace
}  // namespace mxgate::smtp
