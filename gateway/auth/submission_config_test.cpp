// [submission] in mxgate.toml, and the users file it names.
#include <optional>

#include <gtest/gtest.h>

#include "gateway/auth/users_file.h"
#include "gateway/config/config_error.h"
#include "gateway/config/runtime.h"
#include "gateway/util/temp_dir.h"

namespace mxgate {
namespace {

using mxgate::testing::TempDir;

constexpr const char* kHash =
    "$argon2id$v=19$m=8,t=1,p=1$gklOlYKakpDT9R7qC6Hpqw$RU4//7qEG4hR8p+Z1HsMCgoG7VKs4+ynIzWpngzVqXc";

std::optional<ConfigError> runtimeError(const std::string& file) {
  try {
    loadRuntime(file);
  } catch (const ConfigError& e) {
    return e;
  }
  return std::nullopt;
}

TEST(SubmissionConfig, OffByDefaultAndNoUsersFileIsRead) {
  TempDir dir;
  auto rt = loadRuntime(dir.write("mxgate.toml", ""));
  const SubmissionConfig& s = rt->config.submission;
  EXPECT_TRUE(s.listen.empty());
  EXPECT_FALSE(s.authEnabled());
  EXPECT_EQ(s.users_file, "/etc/mxgate/users");
  EXPECT_TRUE(s.require_tls);
  EXPECT_EQ(s.max_auth_failures, 3);
  EXPECT_FALSE(s.auth_on_mx);
  EXPECT_EQ(rt->users, nullptr);
}

TEST(SubmissionConfig, ReadsEveryKeyAndTheUsersFileRelativeToTheConfig) {
  TempDir dir;
  dir.write("users", std::string("alice:") + kHash + "\n");
  auto rt = loadRuntime(dir.write("mxgate.toml",
                                  "[submission]\n"
                                  "listen = [\"127.0.0.1:587\", \"[::1]:587\"]\n"
                                  "users_file = \"users\"\n"
                                  "require_tls = false\n"
                                  "max_auth_failures = 5\n"
                                  "auth_on_mx = true\n"));
  const SubmissionConfig& s = rt->config.submission;
  ASSERT_EQ(s.listen.size(), 2u);
  EXPECT_EQ(s.listen[0].port(), 587);
  EXPECT_TRUE(s.listen[1].address().is_v6());
  EXPECT_EQ(s.users_file, dir.path() + "/users");
  EXPECT_FALSE(s.require_tls);
  EXPECT_EQ(s.max_auth_failures, 5);
  EXPECT_TRUE(s.auth_on_mx);
  ASSERT_NE(rt->users, nullptr);
  EXPECT_NE(rt->users->find("alice"), nullptr);
}

TEST(SubmissionConfig, ErrorsNameFileAndLine) {
  TempDir dir;
  struct Case {
    std::string text;
    uint32_t line;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"[submission]\nlisten = [\"127.0.0.1\"]\n", 2,
            "submission.listen: \"127.0.0.1\" needs a port, e.g. 127.0.0.1:2525"},
           {"[server]\nlisten = [\"127.0.0.1:2525\"]\n[submission]\nlisten = "
            "[\"127.0.0.1:2525\"]\n",
            4, "submission.listen: \"127.0.0.1:2525\" is also in server.listen"},
           {"[submission]\nmax_auth_failures = 0\n", 2,
            "submission.max_auth_failures: must be between 1 and 100, not 0"},
           {"[submission]\nmax_auth_failure = 2\n", 2,
            "submission.max_auth_failure: unknown setting"},
           {"[tls]\nenabled = false\n[submission]\nlisten = [\"127.0.0.1:587\"]\n", 4,
            "submission.listen: AUTH needs TLS: set tls.enabled = true (or require_tls = false on "
            "a trusted network)"},
           {"[submission]\n\nauth_on_mx = true\nusers_file = \"nope\"\n", 4,
            "submission.users_file: cannot read the users file: No such file or directory (" +
                dir.path() + "/nope)"},
       }) {
    auto e = runtimeError(dir.write("mxgate.toml", c.text));
    ASSERT_TRUE(e) << c.text;
    EXPECT_EQ(e->file(), dir.path() + "/mxgate.toml") << c.text;
    EXPECT_EQ(e->line(), c.line) << c.text;
    EXPECT_EQ(e->message(), c.message) << c.text;
  }
}

TEST(SubmissionConfig, ABadUsersFileFailsTheLoadAtItsOwnLine) {
  TempDir dir;
  dir.write("users", std::string("alice:") + kHash + "\n# ok so far\nbob:$1$md5$hash\n");
  auto e = runtimeError(dir.write(
      "mxgate.toml", "[submission]\nlisten = [\"127.0.0.1:587\"]\nusers_file = \"users\"\n"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->file(), dir.path() + "/users");
  EXPECT_EQ(e->line(), 3u);
  EXPECT_EQ(e->message(),
            "user bob: unsupported hash scheme (only $argon2id$ and yescrypt $y$ are accepted)");
}

}  // namespace
}  // namespace mxgate
