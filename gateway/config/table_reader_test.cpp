#include "gateway/config/table_reader.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace mxgate {
namespace {

toml::value parse(const std::string& text) {
  std::istringstream in(text);
  return toml::parse(in, "test.toml");
}

TEST(TableReader, ReadsTypedValuesWithDefaults) {
  auto v =
      parse("a = \"x\"\nb = 3\nc = true\nd = \"5m\"\ne = \"30M\"\nf = [\"p\", \"q\"]\ng = 1.5\n");
  TableReader r(v, "");
  EXPECT_EQ(r.getString("a", ""), "x");
  EXPECT_EQ(r.getInt("b", 0, 0, 10), 3);
  EXPECT_TRUE(r.getBool("c", false));
  EXPECT_EQ(r.getDuration("d", {}), std::chrono::minutes(5));
  EXPECT_EQ(r.getSize("e", 0), 30u << 20);
  EXPECT_EQ(r.getStringList("f", {}), (std::vector<std::string>{"p", "q"}));
  EXPECT_DOUBLE_EQ(r.getDouble("g", 0), 1.5);
  EXPECT_EQ(r.getString("missing", "dflt"), "dflt");
  EXPECT_NO_THROW(r.finish());
}

TEST(TableReader, UnknownKeyFailsWithFileAndLine) {
  auto v = parse("a = 1\n\nlisten_adress = \"x\"\n");
  TableReader r(v, "server");
  r.getInt("a", 0, 0, 5);
  try {
    r.finish();
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "test.toml");
    EXPECT_EQ(e.line(), 3u);
    EXPECT_NE(std::string(e.what()).find("server.listen_adress: unknown setting"),
              std::string::npos)
        << e.what();
  }
}

TEST(TableReader, WrongTypeAndRangeFailAtTheKeysLine) {
  auto v = parse("x = 1\ny = \"no\"\nz = 99\n");
  TableReader r(v, "smtp");
  try {
    r.getInt("y", 0, 0, 5);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), 2u);
    EXPECT_NE(std::string(e.what()).find("must be an integer, not a string"), std::string::npos);
  }
  try {
    r.getInt("z", 0, 0, 5);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), 3u);
    EXPECT_NE(std::string(e.what()).find("between 0 and 5"), std::string::npos);
  }
}

TEST(TableReader, BadDurationAndSize) {
  auto v = parse("d = \"5 minutes\"\ns = \"12X\"\n");
  TableReader r(v, "");
  EXPECT_THROW(r.getDuration("d", {}), ConfigError);
  EXPECT_THROW(r.getSize("s", 0), ConfigError);
}

TEST(TableReader, NestedTablesReportTheirPath) {
  auto v = parse("[filters.lists]\nenabled = true\nbogus = 1\n");
  TableReader root(v, "");
  TableReader filters = root.getTable("filters");
  TableReader lists = filters.getTable("lists");
  lists.getBool("enabled", false);
  try {
    lists.finish();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), 3u);
    EXPECT_NE(std::string(e.what()).find("filters.lists.bogus"), std::string::npos) << e.what();
  }
}

TEST(ParseTomlFile, SyntaxErrorHasFileAndLine) {
  std::string path = ::testing::TempDir() + "/bad.toml";
  {
    std::ofstream f(path);
    f << "[server]\nlisten = [\"127.0.0.1:25\"\n\nx = \n";
  }
  try {
    parseTomlFile(path);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_GT(e.line(), 1u);
    EXPECT_NE(std::string(e.what()).find("syntax error"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parseTomlFile(path + ".missing"), ConfigError);
}

TEST(ParseDuration, Units) {
  EXPECT_EQ(parseDuration("250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(parseDuration("90"), std::chrono::seconds(90));
  EXPECT_EQ(parseDuration("36d"), std::chrono::hours(36 * 24));
  EXPECT_FALSE(parseDuration("m"));
  EXPECT_FALSE(parseDuration("-5s"));
  EXPECT_FALSE(parseDuration("5 s"));
}

}  // namespace
}  // namespace mxgate
