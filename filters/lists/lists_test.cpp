#include "filters/lists/lists_filter.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "filters/lists/address_pattern.h"
#include "gateway/config/table_reader.h"
#include "gateway/pipeline/symbol_table.h"
#include "gateway/pipeline/testing.h"

namespace mxgate {
namespace {

namespace fs = std::filesystem;

// Builds the filter from the body of a [filters.lists] section, as the
// pipeline would, and runs stages against one session.
class ListsHarness {
 public:
  explicit ListsHarness(const std::string& body, const std::string& file = "mxgate.toml") {
    std::istringstream in("[filters.lists]\n" + body);
    doc_ = toml::parse(in, file);
    TableReader root(doc_, "");
    TableReader filters = root.getTable("filters");
    TableReader lists = filters.getTable("lists");
    filter_ = listsFilterFactory().create(lists, FilterDeps{});
    lists.finish();
    for (const SymbolSpec& s : listsFilterFactory().spec().symbols)
      symbols_.declare(s.name, {s.default_weight, s.description, "lists"});
  }

  StageResult connect(const std::string& ip) {
    session_.client_ip = asio::ip::make_address(ip);
    return run(Stage::kConnect);
  }
  StageResult mail(const std::string& sender) {
    envelope_.mail_from = sender;
    return run(Stage::kMail);
  }

  const ScanResult& result() const { return result_; }
  bool skipped() const { return skipped_; }
  std::string detail(std::string_view symbol) const {
    for (const auto& h : result_.hits())
      if (h.name == symbol) return h.detail;
    return "<none>";
  }

 private:
  StageResult run(Stage stage) {
    result_.clear();
    FilterContext ctx(session_, envelope_, symbols_, result_);
    ctx.setFilterName("lists");
    StageResult r = testing::runCheck(*filter_, stage, ctx);
    skipped_ = ctx.contentSkipped();
    return r;
  }

  toml::value doc_;
  std::unique_ptr<Filter> filter_;
  SymbolTable symbols_;
  SessionInfo session_;
  Envelope envelope_;
  ScanResult result_;
  bool skipped_ = false;
};

using Kind = StageResult::Kind;

TEST(ListsIp, CidrV4HitsAndMisses) {
  ListsHarness h(R"(deny_ips = ["192.0.2.0/24", "198.51.100.7"])");
  EXPECT_EQ(h.connect("192.0.2.200").kind, Kind::kReject);
  EXPECT_EQ(h.detail("LIST_DENY_IP"), "192.0.2.0/24");
  EXPECT_EQ(h.connect("198.51.100.7").kind, Kind::kReject);
  EXPECT_EQ(h.detail("LIST_DENY_IP"), "198.51.100.7");
  EXPECT_EQ(h.connect("192.0.3.1").kind, Kind::kContinue);
  EXPECT_EQ(h.connect("198.51.100.8").kind, Kind::kContinue);
  EXPECT_TRUE(h.result().hits().empty());
}

TEST(ListsIp, CidrV6HitsAndMisses) {
  ListsHarness h(R"(deny_ips = ["2001:db8::/32", "::1"])");
  EXPECT_EQ(h.connect("2001:db8:ffff::1").kind, Kind::kReject);
  EXPECT_EQ(h.connect("::1").kind, Kind::kReject);
  EXPECT_EQ(h.connect("2001:db9::1").kind, Kind::kContinue);
  EXPECT_EQ(h.connect("::2").kind, Kind::kContinue);
}

TEST(ListsIp, V4MappedClientMatchesV4Entry) {
  ListsHarness h(R"(deny_ips = ["192.0.2.0/24"])");
  StageResult r = h.connect("::ffff:192.0.2.9");
  EXPECT_EQ(r.kind, Kind::kReject);
  EXPECT_EQ(r.reply.text, "Access denied: client 192.0.2.9 is on the local deny list");
}

TEST(ListsIp, DenyRejectsWith554) {
  ListsHarness h(R"(deny_ips = ["192.0.2.1"])");
  StageResult r = h.connect("192.0.2.1");
  EXPECT_EQ(r.reply.code, 554);
  EXPECT_EQ(r.reply.enhanced, "5.7.1");
  EXPECT_EQ(r.reply.text, "Access denied: client 192.0.2.1 is on the local deny list");
  EXPECT_DOUBLE_EQ(h.result().score(), 20);
}

TEST(ListsIp, ScoreActionOnlyAddsTheSymbol) {
  ListsHarness h("deny_ips = [\"192.0.2.1\"]\ndeny_ip_action = \"score\"\n");
  EXPECT_EQ(h.connect("192.0.2.1").kind, Kind::kContinue);
  EXPECT_TRUE(h.result().has("LIST_DENY_IP"));
}

TEST(ListsIp, AllowBeatsDenyAndSkipsContent) {
  ListsHarness h("allow_ips = [\"192.0.2.5\"]\ndeny_ips = [\"192.0.2.0/24\"]\n");
  EXPECT_EQ(h.connect("192.0.2.5").kind, Kind::kContinue);
  EXPECT_TRUE(h.result().has("LIST_ALLOW_IP"));
  EXPECT_FALSE(h.result().has("LIST_DENY_IP"));
  EXPECT_DOUBLE_EQ(h.result().score(), -20);
  EXPECT_TRUE(h.skipped());
  // Set again per message, without scoring the IP twice.
  EXPECT_EQ(h.mail("a@example.com").kind, Kind::kContinue);
  EXPECT_TRUE(h.skipped());
  EXPECT_TRUE(h.result().hits().empty());
}

TEST(ListsIp, AllowSkipContentCanBeTurnedOff) {
  ListsHarness h("allow_ips = [\"192.0.2.5\"]\nallow_ips_skip_content = false\n");
  h.connect("192.0.2.5");
  EXPECT_TRUE(h.result().has("LIST_ALLOW_IP"));
  EXPECT_FALSE(h.skipped());
  h.mail("a@example.com");
  EXPECT_FALSE(h.skipped());
}

TEST(ListsSender, EachPatternForm) {
  ListsHarness h(R"(deny_senders = ["user@example.com", "*@exact.example", "bare.example",
                  "*.gov", "*@*.sub.example", "bounce-*@lists.example.org"])");
  struct Case {
    const char* sender;
    const char* entry;  // nullptr: no match
  };
  for (const Case& c : {
           Case{"user@example.com", "user@example.com"},
           Case{"other@example.com", nullptr},
           Case{"any@exact.example", "*@exact.example"},
           Case{"any@sub.exact.example", nullptr},
           Case{"x@bare.example", "bare.example"},
           Case{"x@a.bare.example", nullptr},
           Case{"x@agency.gov", "*.gov"},
           Case{"x@a.b.gov", "*.gov"},
           Case{"x@gov", nullptr},
           Case{"x@notgov", nullptr},
           Case{"x@a.sub.example", "*@*.sub.example"},
           Case{"x@sub.example", nullptr},
           Case{"bounce-123@lists.example.org", "bounce-*@lists.example.org"},
           Case{"bounce-@lists.example.org", "bounce-*@lists.example.org"},
           Case{"bounces@lists.example.org", nullptr},
       }) {
    StageResult r = h.mail(c.sender);
    if (c.entry == nullptr) {
      EXPECT_EQ(r.kind, Kind::kContinue) << c.sender;
      EXPECT_FALSE(h.result().has("LIST_DENY_SENDER")) << c.sender;
    } else {
      EXPECT_EQ(r.kind, Kind::kReject) << c.sender;
      EXPECT_EQ(h.detail("LIST_DENY_SENDER"), c.entry) << c.sender;
    }
  }
}

TEST(ListsSender, CaseInsensitive) {
  ListsHarness h(R"(deny_senders = ["User@Example.COM", "*.GOV"])");
  EXPECT_EQ(h.mail("USER@example.com").kind, Kind::kReject);
  EXPECT_EQ(h.detail("LIST_DENY_SENDER"), "User@Example.COM");
  EXPECT_EQ(h.mail("x@Agency.Gov").kind, Kind::kReject);
}

TEST(ListsSender, NullSenderMatchesNothing) {
  ListsHarness h(R"(deny_senders = ["*@*", "*"])");
  EXPECT_EQ(h.mail("").kind, Kind::kContinue);
  EXPECT_TRUE(h.result().hits().empty());
  EXPECT_EQ(h.mail("a@b.example").kind, Kind::kReject);
}

TEST(ListsSender, RejectWith550) {
  ListsHarness h(R"(deny_senders = ["spam.example"])");
  StageResult r = h.mail("a@spam.example");
  EXPECT_EQ(r.reply.code, 550);
  EXPECT_EQ(r.reply.enhanced, "5.7.1");
  EXPECT_EQ(r.reply.text, "Sender address rejected: on the local deny list");
}

TEST(ListsSender, ScoreActionOnlyAddsTheSymbol) {
  ListsHarness h("deny_senders = [\"spam.example\"]\ndeny_sender_action = \"score\"\n");
  EXPECT_EQ(h.mail("a@spam.example").kind, Kind::kContinue);
  EXPECT_DOUBLE_EQ(h.result().score(), 20);
}

TEST(ListsSender, AllowBeatsDenyWithoutSkippingContent) {
  ListsHarness h("allow_senders = [\"boss@corp.example\"]\ndeny_senders = [\"corp.example\"]\n");
  EXPECT_EQ(h.mail("boss@corp.example").kind, Kind::kContinue);
  EXPECT_TRUE(h.result().has("LIST_ALLOW_SENDER"));
  EXPECT_FALSE(h.result().has("LIST_DENY_SENDER"));
  EXPECT_DOUBLE_EQ(h.result().score(), -5);
  EXPECT_FALSE(h.skipped());  // envelope senders are forgeable
  EXPECT_EQ(h.mail("intern@corp.example").kind, Kind::kReject);
}

TEST(ListsSender, AllowSkipContentIsOptIn) {
  ListsHarness h("allow_senders = [\"corp.example\"]\nallow_senders_skip_content = true\n");
  h.mail("a@corp.example");
  EXPECT_TRUE(h.skipped());
  h.mail("a@other.example");
  EXPECT_FALSE(h.skipped());
}

TEST(ListsPattern, InvalidPatternsAreRejected) {
  for (const char* p : {"", "a b@example.com", "a@b@example.com", "**@example.com",
                        "*@**.example.com", "<a@example.com>", "@example.com", "user@",
                        "example..com", ".example.com", "*.", "a@example.com.", "a\t@x.com"}) {
    SenderPatternSet set;
    std::string error;
    EXPECT_FALSE(set.add(p, &error)) << p;
    EXPECT_FALSE(error.empty()) << p;
  }
}

TEST(ListsPattern, GlobMatchHasNoBacktrackingBlowUp) {
  EXPECT_TRUE(globMatch("a*b*c", "axxbyyc"));
  EXPECT_TRUE(globMatch("*", ""));
  EXPECT_FALSE(globMatch("a*b", "ac"));
  EXPECT_TRUE(globMatch("*a*a*a*a*a*a*a*a*b", std::string(30, 'a') + "b"));
  // Exponential for a recursive matcher; linear-ish here.
  EXPECT_FALSE(globMatch("*a*a*a*a*a*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
}

TEST(ListsConfig, BadArrayEntryFailsAtTheKeysLine) {
  try {
    ListsHarness h("allow_ips = [\"192.0.2.1\"]\ndeny_ips = [\"192.0.2.300\"]\n");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "mxgate.toml");
    EXPECT_EQ(e.line(), 3u);  // line 1 is the section header
    EXPECT_NE(e.message().find("filters.lists.deny_ips"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("192.0.2.300"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ListsHarness("deny_senders = [\"a@b@c\"]\n"), ConfigError);
  EXPECT_THROW(ListsHarness("deny_ip_action = \"drop\"\n"), ConfigError);
}

class ListsFiles : public ::testing::Test {
 protected:
  ListsFiles() {
    static int counter = 0;
    dir_ = fs::path(::testing::TempDir()) /
           ("mxgate-lists-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir_ / "lists");
  }
  ~ListsFiles() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  std::string config() const { return (dir_ / "mxgate.toml").string(); }

  fs::path dir_;
};

TEST_F(ListsFiles, LoadsEntriesCommentsAndBlankLines) {
  write("lists/deny_ips.txt", "# bad networks\n\n192.0.2.0/24   # a comment\r\n  2001:db8::/32\n");
  write("lists/deny_senders.txt", "# senders\nspam.example\nuser#tag@example.com\n");
  ListsHarness h(
      "deny_ips_file = \"lists/deny_ips.txt\"\n"
      "deny_senders_file = \"" +
          (dir_ / "lists/deny_senders.txt").string() + "\"\n",
      config());
  EXPECT_EQ(h.connect("192.0.2.1").kind, Kind::kReject);
  EXPECT_EQ(h.connect("2001:db8::5").kind, Kind::kReject);
  EXPECT_EQ(h.connect("198.51.100.1").kind, Kind::kContinue);
  EXPECT_EQ(h.mail("x@spam.example").kind, Kind::kReject);
  EXPECT_EQ(h.mail("user#tag@example.com").kind, Kind::kReject);
}

TEST_F(ListsFiles, FileAndArrayCombine) {
  write("allow.txt", "192.0.2.1\n");
  ListsHarness h("allow_ips = [\"192.0.2.2\"]\nallow_ips_file = \"allow.txt\"\n", config());
  h.connect("192.0.2.1");
  EXPECT_TRUE(h.result().has("LIST_ALLOW_IP"));
  h.connect("192.0.2.2");
  EXPECT_TRUE(h.result().has("LIST_ALLOW_IP"));
}

TEST_F(ListsFiles, BadLineNamesListFileAndLine) {
  write("lists/senders.txt", "good.example\n# comment\n\nbad pattern@example.com\n");
  try {
    ListsHarness h("allow_senders_file = \"lists/senders.txt\"\n", config());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), (dir_ / "lists/senders.txt").string());
    EXPECT_EQ(e.line(), 4u);
    EXPECT_NE(e.message().find("bad pattern@example.com"), std::string::npos) << e.what();
  }
}

TEST_F(ListsFiles, MissingFileNamesTheFile) {
  try {
    ListsHarness h("\ndeny_ips_file = \"nope.txt\"\n", config());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), config());
    EXPECT_EQ(e.line(), 3u);
    EXPECT_NE(e.message().find((dir_ / "nope.txt").string()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mxgate
