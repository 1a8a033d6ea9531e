#include "gateway/smtp_client/data_encoder.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gateway/smtp/data_reader.h"

namespace mxgate::smtp_client {
namespace {

std::string encodeParts(const std::vector<std::string_view>& parts) {
  DataEncoder enc;
  std::string out;
  for (std::string_view p : parts) enc.encode(p, &out);
  enc.finish(&out);
  return out;
}

std::string encode(std::string_view s) {
  return encodeParts({s});
}

bool hasBareCrOrLf(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return true;
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return true;
  }
  return false;
}

// What a server's DATA reader makes of the wire bytes; checks that it ends
// exactly at the end of them, with nothing bare on the way.
std::string serverView(const std::string& wire) {
  std::string content;
  smtp::DataReader r(&content, 0, smtp::BareNewline::kReject);
  size_t used = r.feed(wire);
  EXPECT_TRUE(r.done());
  EXPECT_EQ(used, wire.size()) << "the data ended early";
  EXPECT_FALSE(r.sawBareCr());
  EXPECT_FALSE(r.sawBareLf());
  return content;
}

// The content a server should store: NULs dropped, every line end (CRLF,
// bare CR, bare LF) one CRLF, a final CRLF added.
std::string expectedContent(std::string_view in) {
  std::string s;
  for (char c : in) {
    if (c != '\0') s += c;
  }
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;  // the LF ends it
    if (s[i] == '\r' || s[i] == '\n') {
      out += "\r\n";
    } else {
      out += s[i];
    }
  }
  if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
  return out;
}

void checkWire(const std::string& wire) {
  if (wire == ".\r\n") return;  // an empty message
  ASSERT_TRUE(wire.ends_with("\r\n.\r\n")) << testing::PrintToString(wire);
  EXPECT_EQ(wire.find("\r\n.\r\n"), wire.size() - 5);
  EXPECT_FALSE(hasBareCrOrLf(wire));
  EXPECT_EQ(wire.find('\0'), std::string::npos);
}

TEST(DataEncoder, PlainLinesPassUnchanged) {
  EXPECT_EQ(encode("Subject: x\r\n\r\nbody\r\n"), "Subject: x\r\n\r\nbody\r\n.\r\n");
}

TEST(DataEncoder, EmptyMessageIsJustTheDot) {
  EXPECT_EQ(encode(""), ".\r\n");
}

TEST(DataEncoder, AddsTheMissingFinalLineEnd) {
  EXPECT_EQ(encode("a\r\nlast"), "a\r\nlast\r\n.\r\n");
  EXPECT_EQ(encode("a\r"), "a\r\n.\r\n");
}

TEST(DataEncoder, BareLineEndsBecomeCrlf) {
  EXPECT_EQ(encode("a\nb\rc\r\r\nd"), "a\r\nb\r\nc\r\n\r\nd\r\n.\r\n");
}

TEST(DataEncoder, LeadingDotsAreStuffed) {
  EXPECT_EQ(encode(".\r\n..x\r\na.b\r\n"), "..\r\n...x\r\na.b\r\n.\r\n");
  EXPECT_EQ(encode("a\n.\nb"), "a\r\n..\r\nb\r\n.\r\n");
  EXPECT_EQ(encode("a\r.\rb"), "a\r\n..\r\nb\r\n.\r\n");
  EXPECT_EQ(encode("."), "..\r\n.\r\n");
}

TEST(DataEncoder, NulIsDroppedAndDoesNotHideALeadingDot) {
  EXPECT_EQ(encode(std::string("a\r\n\0.\r\nb", 8)), "a\r\n..\r\nb\r\n.\r\n");
  EXPECT_EQ(encode(std::string("x\0y", 3)), "xy\r\n.\r\n");
}

TEST(DataEncoder, SlicesAnywhereGiveTheSameBytes) {
  const std::string msg = std::string("A: b\r\n.x\n\r\r\n.\r\n\0.\r..\n.", 23);
  const std::string whole = encode(msg);
  for (size_t i = 0; i <= msg.size(); ++i) {
    for (size_t j = i; j <= msg.size(); ++j) {
      std::string_view m(msg);
      EXPECT_EQ(encodeParts({m.substr(0, i), m.substr(i, j - i), m.substr(j)}), whole)
          << "split at " << i << ", " << j;
    }
  }
}

TEST(DataEncoder, RandomInputsKeepTheInvariants) {
  std::mt19937 gen(12345);
  const char alphabet[] = {'\r', '\n', '.', '\0', 'a', ' '};
  for (int round = 0; round < 3000; ++round) {
    std::string msg;
    size_t len = gen() % 40;
    for (size_t i = 0; i < len; ++i) msg += alphabet[gen() % sizeof alphabet];
    const std::string wire = encode(msg);
    SCOPED_TRACE(testing::PrintToString(msg));
    checkWire(wire);
    if (wire != ".\r\n") {
      EXPECT_EQ(serverView(wire), expectedContent(msg));
    }
  }
}

// --- the SMTP smuggling corpus ------------------------------------------

std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    char c = s[++i];
    out += c == 'r' ? '\r' : c == 'n' ? '\n' : c == '0' ? '\0' : c == 't' ? '\t' : c;
  }
  return out;
}

struct Row {
  std::string name, sequence;
  bool outbound = false;
};

std::vector<Row> loadRows(const std::string& path) {
  std::vector<Row> rows;
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> header;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols;
    std::stringstream ss(line);
    for (std::string col; std::getline(ss, col, '\t');) cols.push_back(col);
    if (header.empty()) {
      header = cols;  // name, sequence, inbound, outbound
      continue;
    }
    if (cols.size() < header.size()) {
      ADD_FAILURE() << "malformed row: " << line;
      continue;
    }
    Row r{cols[0], unescape(cols[1])};
    for (size_t i = 0; i < header.size(); ++i) {
      if (header[i] == "outbound") r.outbound = cols[i] == "yes";
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

TEST(DataEncoderSmuggling, NoCorpusSequenceReachesTheWire) {
  const std::string path = std::string(MXGATE_SOURCE_DIR) + "/../shared/corpora/smtp/smuggling.tsv";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "smuggling corpus not found at " << path;
  const std::vector<Row> rows = loadRows(path);
  ASSERT_FALSE(rows.empty()) << path << " has no rows";
  const std::string smuggled = "MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\n";
  size_t outbound = 0;
  for (const Row& row : rows) {
    SCOPED_TRACE("row " + row.name);
    outbound += row.outbound;
    // Every row, outbound or not, must come out harmless; in the middle of
    // a message, at its very end, and split across slices at every byte.
    for (const std::string& msg : {"Subject: x\r\n\r\nbefore" + row.sequence + smuggled + "after",
                                   "Subject: x\r\n\r\nbefore" + row.sequence}) {
      const std::string wire = encode(msg);
      checkWire(wire);
      // (Look-alikes that are part of the real end, like "\n.\r", aside.)
      for (const std::string& bad :
           {std::string("\n.\n"), std::string("\r.\n"), std::string("\r.\r"),
            std::string("\r\n.\r\r\n"), std::string("\r\n\0.\r\n", 6)}) {
        EXPECT_EQ(wire.find(bad), std::string::npos) << testing::PrintToString(bad);
      }
      const std::string content = serverView(wire);
      if (msg.find(smuggled) != std::string::npos) {
        EXPECT_NE(content.find(smuggled), std::string::npos) << "the smuggled commands are content";
      }
      for (size_t i = 0; i <= msg.size(); ++i) {
        std::string_view m(msg);
        ASSERT_EQ(encodeParts({m.substr(0, i), m.substr(i)}), wire) << "split at " << i;
      }
    }
  }
  EXPECT_GT(outbound, 0u) << "no row is marked outbound";
  std::cout << "smuggling.tsv: " << rows.size() << " rows (" << outbound
            << " outbound) encoded safely\n";
}

}  // namespace
}  // namespace mxgate::smtp_client
