#include "gateway/auth/users_file.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "gateway/auth/password_hash.h"
#include "gateway/config/config_error.h"
#include "gateway/util/temp_dir.h"

namespace mxgate {
namespace {

constexpr const char* kArgon =
    "$argon2id$v=19$m=8,t=1,p=1$gklOlYKakpDT9R7qC6Hpqw$RU4//7qEG4hR8p+Z1HsMCgoG7VKs4+ynIzWpngzVqXc";
constexpr const char* kYescrypt =
    "$y$j9T$tQJpHO3fubE.wnLIlIQ7v/$UqmkqzqQ991k1nwQrt6khQ56DLTseG7f5PyiNa5Bez4";

std::string errorOf(const std::string& text) {
  try {
    UserDb::parse(text, "/etc/mxgate/users");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(UsersFile, ParsesUsersCommentsAndBlankLines) {
  std::string text = std::string("# mail users\n\nAlice:") + kArgon +
                     "\r\n  bob@example.org:" + kYescrypt + "  \n   # indented comment\n";
  UserDb db = UserDb::parse(text, "users");
  EXPECT_EQ(db.size(), 2u);
  ASSERT_NE(db.find("alice"), nullptr);
  EXPECT_EQ(*db.find("ALICE"), kArgon);
  ASSERT_NE(db.find("Bob@Example.org"), nullptr);
  EXPECT_EQ(*db.find("bob@example.org"), kYescrypt);
  EXPECT_EQ(db.find("carol"), nullptr);
  EXPECT_TRUE(verifyPassword(*db.find("alice"), "correct horse battery"));
  EXPECT_TRUE(verifyPassword(*db.find("bob@example.org"), "correct horse battery"));
}

TEST(UsersFile, ErrorsNameFileAndLine) {
  EXPECT_EQ(errorOf("# c\nalice\n"),
            "/etc/mxgate/users:2: expected NAME:HASH (see mxgatectl user add)");
  EXPECT_EQ(errorOf(std::string("alice:") + kArgon + "\nALICE:" + kYescrypt + "\n"),
            "/etc/mxgate/users:2: user alice is listed twice (first on line 1)");
  EXPECT_EQ(errorOf("\n\nalice:$6$salt$hash\n"),
            "/etc/mxgate/users:3: user alice: unsupported hash scheme (only $argon2id$ and "
            "yescrypt $y$ are accepted)");
  EXPECT_EQ(errorOf("alice:secret\n"),
            "/etc/mxgate/users:1: user alice: not a password hash (expected $argon2id$... or "
            "yescrypt $y$...)");
  EXPECT_EQ(errorOf("alice:$argon2id$v=19$garbage\n"),
            "/etc/mxgate/users:1: user alice: malformed argon2id hash");
  EXPECT_EQ(errorOf(std::string(":") + kArgon + "\n"), "/etc/mxgate/users:1: empty user name");
  EXPECT_EQ(errorOf(std::string("al ice:") + kArgon + "\n"),
            "/etc/mxgate/users:1: a user name must not contain ':', spaces or control characters");
  EXPECT_EQ(errorOf(std::string("alice:") + kArgon + ":1000\n"),
            "/etc/mxgate/users:1: user alice: malformed argon2id hash");
}

TEST(UsersFile, MissingFileIsAnErrorForTheDaemon) {
  testing::TempDir dir;
  try {
    UserDb::load(dir.path() + "/nope");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), dir.path() + "/nope");
    EXPECT_EQ(e.line(), 0u);
    EXPECT_NE(e.message().find("cannot read"), std::string::npos);
  }
}

TEST(UsersFile, EditorKeepsCommentsAndOrderAndWritesAtomically) {
  testing::TempDir dir;
  std::string path = dir.write(
      "users", std::string("# header\nalice:") + kArgon + "\n\nbob:" + kYescrypt + "\n# tail");
  UsersFileEditor e = UsersFileEditor::read(path);
  EXPECT_TRUE(e.contains("ALICE"));
  e.set("Carol", kYescrypt);
  e.set("alice", kYescrypt);
  EXPECT_TRUE(e.remove("bob"));
  EXPECT_FALSE(e.remove("bob"));
  e.write();
  std::ifstream in(path);
  std::stringstream got;
  got << in.rdbuf();
  EXPECT_EQ(got.str(),
            std::string("# header\nalice:") + kYescrypt + "\n\n# tail\ncarol:" + kYescrypt + "\n");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  // No temporary file is left behind.
  size_t files = 0;
  for ([[maybe_unused]] const auto& f : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1u);
  auto users = UsersFileEditor::read(path).users();
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0].first, "alice");
  EXPECT_EQ(users[1].first, "carol");
  EXPECT_EQ(users[1].second, kYescrypt);
}

TEST(UsersFile, EditorStartsFromNothingButNeverRewritesABrokenFile) {
  testing::TempDir dir;
  UsersFileEditor fresh = UsersFileEditor::read(dir.path() + "/new");
  EXPECT_TRUE(fresh.users().empty());
  fresh.set("dave", kArgon);
  fresh.write();
  EXPECT_EQ(UserDb::load(dir.path() + "/new").size(), 1u);
  std::string broken = dir.write("broken", "alice:nothash\n");
  EXPECT_THROW(UsersFileEditor::read(broken), ConfigError);
}

}  // namespace
}  // namespace mxgate
