#include "gateway/config/config.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include <gtest/gtest.h>

#include "gateway/util/temp_dir.h"

#include "gateway/config/config_error.h"
#include "gateway/config/runtime.h"

namespace mxgate {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using mxgate::testing::TempDir;

// Restores the working directory when it goes.
class CwdGuard {
 public:
  CwdGuard() : saved_(fs::current_path()) {}
  ~CwdGuard() { fs::current_path(saved_); }

 private:
  fs::path saved_;
};

std::optional<ConfigError> configError(const std::string& file) {
  try {
    loadConfig(file);
  } catch (const ConfigError& e) {
    return e;
  }
  return std::nullopt;
}

std::optional<ConfigError> runtimeError(const std::string& file) {
  try {
    loadRuntime(file);
  } catch (const ConfigError& e) {
    return e;
  }
  return std::nullopt;
}

TEST(LoadConfig, Defaults) {
  TempDir dir;
  const std::string file = dir.write("mxgate.toml", "");
  Config c = loadConfig(file);
  EXPECT_EQ(c.file, file);
  EXPECT_EQ(c.dir, dir.path());
  EXPECT_FALSE(c.hostname.empty());
  ASSERT_EQ(c.listen.size(), 1u);
  EXPECT_EQ(c.listen[0].address().to_string(), "127.0.0.1");
  EXPECT_EQ(c.listen[0].port(), 2525);
  EXPECT_EQ(c.threads, 0);
  EXPECT_EQ(c.user, "mxgate");
  EXPECT_EQ(c.state_dir, "/var/lib/mxgate");
  EXPECT_EQ(c.spool_dir, "/var/spool/mxgate");
  EXPECT_EQ(c.store_map_size, 1ull << 30);
  EXPECT_EQ(c.spool_segment_size, 64ull << 20);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.log_file, "");

  EXPECT_EQ(c.smtp.banner, "ESMTP mxgate");
  EXPECT_EQ(c.smtp.max_message_size, 30ull << 20);
  EXPECT_EQ(c.smtp.max_recipients, 200);
  EXPECT_EQ(c.smtp.max_bad_recipients, 20);
  EXPECT_EQ(c.smtp.max_hops, 20);
  EXPECT_EQ(c.smtp.max_line_length, 1000);
  EXPECT_EQ(c.smtp.max_bad_commands, 8);
  EXPECT_EQ(c.smtp.max_connections, 1000);
  EXPECT_EQ(c.smtp.max_connections_per_ip, 50);
  EXPECT_EQ(c.smtp.session_timeout, 5min);
  EXPECT_EQ(c.smtp.command_timeout, 120s);
  EXPECT_EQ(c.smtp.bare_newline, smtp::BareNewline::kReject);
  EXPECT_FALSE(c.smtp.vrfy);
  EXPECT_FALSE(c.smtp.expn);

  EXPECT_TRUE(c.tls.enabled);
  EXPECT_EQ(c.tls.cert_file, "/etc/mxgate/tls/cert.pem");
  EXPECT_EQ(c.tls.key_file, "/etc/mxgate/tls/key.pem");
  EXPECT_TRUE(c.trusted_networks.empty());
  EXPECT_TRUE(c.domains.empty());

  EXPECT_EQ(c.policy.add_header, 5);
  EXPECT_EQ(c.policy.tag_subject, 8);
  EXPECT_FALSE(c.policy.quarantine);
  EXPECT_FALSE(c.policy.discard);
  EXPECT_EQ(c.policy.reject, 15);
  EXPECT_EQ(c.policy.subject_tag, "[SPAM]");
  EXPECT_EQ(c.policy.status_header, "X-Mxgate-Status");
}

TEST(LoadConfig, ReadsEverySection) {
  TempDir dir;
  const std::string file = dir.write("mxgate.toml", R"(
[server]
hostname = "mx.example.net"
listen = ["192.0.2.1:25", "[2001:db8::1]:2525", ":587"]
threads = 4
log_level = "debug"
spool_segment_size = "8M"

[smtp]
max_message_size = "10M"
max_recipients = 50
session_timeout = "10m"
command_timeout = "1m"
bare_newline = "normalize"
vrfy = true

[relay]
trusted_networks = ["10.0.0.0/8", "2001:db8:1::/48", "192.0.2.99"]

[[domains]]
name = "Example.ORG"
recipients = ["Alice", "bob@example.org"]

[[domains]]
name = "catchall.example"
recipients = "accept-all"

[policy]
add_header = 3
tag_subject = 6.5
quarantine = 9
discard = 12
reject = 20
subject_tag = "***SPAM***"

[filters.lists]
deny_ips = ["192.0.2.0/24"]

[symbols]
LIST_DENY_IP = 3
)");
  Config c = loadConfig(file);
  EXPECT_EQ(c.hostname, "mx.example.net");
  ASSERT_EQ(c.listen.size(), 3u);
  EXPECT_EQ(c.listen[1].address().to_string(), "2001:db8::1");
  EXPECT_EQ(c.listen[1].port(), 2525);
  EXPECT_EQ(c.listen[2].address().to_string(), "::");
  EXPECT_EQ(c.listen[2].port(), 587);
  EXPECT_EQ(c.threads, 4);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.spool_segment_size, 8ull << 20);
  EXPECT_EQ(c.smtp.max_message_size, 10ull << 20);
  EXPECT_EQ(c.smtp.max_recipients, 50);
  EXPECT_EQ(c.smtp.session_timeout, 10min);
  EXPECT_EQ(c.smtp.command_timeout, 1min);
  EXPECT_EQ(c.smtp.bare_newline, smtp::BareNewline::kNormalize);
  EXPECT_TRUE(c.smtp.vrfy);
  EXPECT_TRUE(c.trusted_networks.contains(asio::ip::make_address("10.1.2.3")));
  EXPECT_TRUE(c.trusted_networks.contains(asio::ip::make_address("2001:db8:1::5")));
  EXPECT_TRUE(c.trusted_networks.contains(asio::ip::make_address("192.0.2.99")));
  EXPECT_FALSE(c.trusted_networks.contains(asio::ip::make_address("192.0.2.98")));
  ASSERT_EQ(c.domains.size(), 2u);
  const DomainConfig* d = c.findDomain("example.org");
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE(d->accept_all);
  EXPECT_EQ(d->users, (std::unordered_set<std::string>{"alice", "bob"}));
  ASSERT_NE(c.findDomain("catchall.example"), nullptr);
  EXPECT_TRUE(c.findDomain("catchall.example")->accept_all);
  EXPECT_EQ(c.findDomain("other.example"), nullptr);
  EXPECT_EQ(c.policy.add_header, 3);
  EXPECT_EQ(c.policy.tag_subject, 6.5);
  EXPECT_EQ(c.policy.quarantine, 9);
  EXPECT_EQ(c.policy.discard, 12);
  EXPECT_EQ(c.policy.reject, 20);
  EXPECT_EQ(c.policy.subject_tag, "***SPAM***");
}

struct ErrorCase {
  const char* toml;
  uint32_t line;
  const char* message;  // the exact ConfigError::message()
};

void expectErrors(const std::vector<ErrorCase>& cases) {
  TempDir dir;
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.toml);
    const std::string file = dir.write("mxgate.toml", c.toml);
    auto e = configError(file);
    ASSERT_TRUE(e) << "expected an error";
    EXPECT_EQ(e->file(), file);
    EXPECT_EQ(e->line(), c.line) << e->what();
    EXPECT_EQ(e->message(), c.message);
  }
}

TEST(LoadConfig, SmtpErrorsNameFileAndLine) {
  expectErrors({
      {"[smtp]\nmax_recipients = 5\nmax_recipents = 6\n", 3, "smtp.max_recipents: unknown setting"},
      {"[smtp]\nmax_recipients = \"many\"\n", 2,
       "smtp.max_recipients: must be an integer, not a string"},
      {"[smtp]\n\nmax_line_length = 100\n", 3,
       "smtp.max_line_length: must be between 512 and 65536, not 100"},
      {"[smtp]\nmax_message_size = 100\n", 2, "smtp.max_message_size: must be at least 1K"},
      {"[smtp]\nmax_message_size = \"12Q\"\n", 2,
       "smtp.max_message_size: \"12Q\" is not a size (use e.g. 512K, 30M, 1G)"},
      {"[smtp]\ncommand_timeout = \"10m\"\nsession_timeout = \"5m\"\n", 3,
       "smtp.session_timeout: must not be shorter than smtp.command_timeout"},
      {"[smtp]\ncommand_timeout = 0\n", 2, "smtp.command_timeout: must be positive"},
      {"[smtp]\nbare_newline = \"strip\"\n", 2,
       "smtp.bare_newline: must be \"reject\" or \"normalize\", not \"strip\""},
      {"[smtp]\nvrfy = \"yes\"\n", 2, "smtp.vrfy: must be true or false, not a string"},
  });
}

TEST(LoadConfig, ServerErrorsNameFileAndLine) {
  expectErrors({
      {"[server]\nthreads = \"four\"\n", 2, "server.threads: must be an integer, not a string"},
      {"[server]\nthreads = 1000\n", 2, "server.threads: must be between 0 and 256, not 1000"},
      {"[server]\nlisten = [\"127.0.0.1\"]\n", 2,
       "server.listen: \"127.0.0.1\" needs a port, e.g. 127.0.0.1:2525"},
      {"[server]\nlisten = [\"mail.example:25\"]\n", 2,
       "server.listen: \"mail.example:25\": \"mail.example\" is not an IP address"},
      {"[server]\n\nlisten = [\"127.0.0.1:70000\"]\n", 3,
       "server.listen: \"127.0.0.1:70000\": bad port"},
      {"[server]\nlisten = [\"[::1]:smtp\"]\n", 2, "server.listen: \"[::1]:smtp\": bad port"},
      {"[server]\nlisten = []\n", 2, "server.listen: needs at least one address"},
      {"[server]\nlisten = [25]\n", 2,
       "server.listen: every element must be a string, not an integer"},
      {"[server]\nlog_level = \"verbose\"\n", 2,
       "server.log_level: must be debug, info, warn or error"},
      {"[server]\nstore_map_size = \"1K\"\n", 2, "server.store_map_size: must be at least 1M"},
      {"[server]\nhostname = \"mx\"\nlisten_adress = \"x\"\n", 3,
       "server.listen_adress: unknown setting"},
  });
}

TEST(LoadConfig, RelayAndTopLevelErrors) {
  expectErrors({
      {"[relay]\ntrusted_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n", 2,
       "relay.trusted_networks: \"10.0.0.0/33\" is not an address or CIDR network"},
      {"[relay]\ntrusted_networks = [\"localhost\"]\n", 2,
       "relay.trusted_networks: \"localhost\" is not an address or CIDR network"},
      {"[relay]\ntrusted = [\"10.0.0.0/8\"]\n", 2, "relay.trusted: unknown setting"},
      {"[server]\nthreads = 2\n\n[smpt]\nmax_hops = 3\n", 4, "smpt: unknown setting"},
      {"[tls]\nenabled = 1\n", 2, "tls.enabled: must be true or false, not an integer"},
  });
}

TEST(LoadConfig, DomainErrorsNameFileAndLine) {
  expectErrors({
      {"[[domains]]\nname = \"example.org\"\nrecipients = \"accept-all\"\n\n"
       "[[domains]]\nname = \"Example.ORG\"\nrecipients = \"accept-all\"\n",
       6, "domains.name: domain example.org is listed twice"},
      {"[[domains]]\nname = \"example.org\"\n", 1,
       "domains.recipients: domain example.org has no recipients: set recipients = \"accept-all\""
       " or list them"},
      {"[[domains]]\nname = \"example.org\"\nrecipients = []\n", 3,
       "domains.recipients: domain example.org has no recipients: set recipients = \"accept-all\""
       " or list them"},
      {"[[domains]]\nname = \"example.org\"\nrecipients = \"everyone\"\n", 3,
       "domains.recipients: must be \"accept-all\" or a list of local parts"},
      {"[[domains]]\nname = \"example.org\"\nrecipients = 3\n", 3,
       "domains.recipients: must be \"accept-all\" or a list of local parts"},
      {"[[domains]]\nname = \"example.org\"\nrecipients = [\"a\", \"b@other.org\"]\n", 3,
       "recipient b@other.org is not in domain example.org"},
      {"[[domains]]\nrecipients = \"accept-all\"\n", 1,
       "domains.name: every [[domains]] entry needs a name"},
      {"[[domains]]\nname = \"example.org\"\nrecipients = \"accept-all\"\nusers = [\"a\"]\n", 4,
       "domains.users: unknown setting"},
  });
}

TEST(LoadConfig, PolicyErrorsNameFileAndLine) {
  expectErrors({
      {"[policy]\nadd_header = 9\n", 2,
       "policy.add_header: 9 must not exceed policy.tag_subject (8)"},
      {"[policy]\ntag_subject = 10\nreject = 9\n", 2,
       "policy.tag_subject: 10 must not exceed policy.reject (9)"},
      {"[policy]\nreject = 4\n", 2, "policy.reject: 4 must not be below policy.tag_subject (8)"},
      {"[policy]\nquarantine = 16\n", 2,
       "policy.quarantine: 16 must not exceed policy.reject (15)"},
      {"[policy]\nreject = 30\ndiscard = 31\n", 3,
       "policy.discard: 31 must not exceed policy.reject (30)"},
      {"[policy]\nreject = \"high\"\n", 2, "policy.reject: must be a number, not a string"},
      {"[policy]\nstatus_header = \"X Status\"\n", 2,
       "policy.status_header: must be a header field name (letters, digits, '-')"},
  });
}

TEST(LoadConfig, DeliveryBounceSettings) {
  TempDir dir;
  Config c = loadConfig(dir.write("default.toml", ""));
  EXPECT_EQ(c.delivery.bounce_guard, BounceGuard::kSpfPass);
  EXPECT_EQ(c.delivery.bounce_max_original, 100u * 1024);
  c = loadConfig(dir.write(
      "set.toml", "[delivery]\nbounce_guard = \"always\"\nbounce_max_original = \"1M\"\n"));
  EXPECT_EQ(c.delivery.bounce_guard, BounceGuard::kAlways);
  EXPECT_EQ(c.delivery.bounce_max_original, 1u << 20);
  expectErrors({
      {"[delivery]\nhold = false\nbounce_guard = \"sometimes\"\n", 3,
       "delivery.bounce_guard: must be \"spf_pass\", \"always\" or \"never\", not \"sometimes\""},
      {"[delivery]\nbounce_max_original = \"big\"\n", 2,
       "delivery.bounce_max_original: \"big\" is not a size (use e.g. 512K, 30M, 1G)"},
  });
}

TEST(LoadConfig, RecipientsFileIsReadRelativeToTheConfig) {
  TempDir dir;
  dir.write("lists/users.txt", "# users\nAlice\n\n  bob   # the admin\ncarol@Example.org\n");
  const std::string file =
      dir.write("mxgate.toml",
                "[[domains]]\nname = \"example.org\"\nrecipients = [\"dave\"]\n"
                "recipients_file = \"lists/users.txt\"\n");
  Config c = loadConfig(file);
  ASSERT_EQ(c.domains.size(), 1u);
  EXPECT_EQ(c.domains[0].users, (std::unordered_set<std::string>{"alice", "bob", "carol", "dave"}));
}

TEST(LoadConfig, RecipientsFileErrorNamesThatFilesLine) {
  TempDir dir;
  const std::string users = dir.write("users.txt", "alice\n# comment\n\nmallory@other.org\n");
  const std::string file = dir.write(
      "mxgate.toml", "[[domains]]\nname = \"example.org\"\nrecipients_file = \"users.txt\"\n");
  auto e = configError(file);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->file(), users);
  EXPECT_EQ(e->line(), 4u);
  EXPECT_EQ(e->message(), "recipient mallory@other.org is not in domain example.org");

  const std::string missing = dir.write(
      "missing.toml", "[[domains]]\nname = \"example.org\"\n\nrecipients_file = \"nope.txt\"\n");
  auto m = configError(missing);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->file(), missing);
  EXPECT_EQ(m->line(), 4u);
  EXPECT_EQ(m->message(), "domains.recipients_file: cannot read " + dir.path() + "/nope.txt");
}

TEST(LoadConfig, RelativePathsResolveAgainstTheConfigDirectory) {
  TempDir dir;
  dir.write("etc/mxgate.toml", R"([server]
state_dir = "state"
spool_dir = "../spool"
log_file = "log/mxgate.log"

[tls]
cert_file = "tls/cert.pem"
key_file = "/abs/key.pem"
)");
  CwdGuard cwd;
  // Load through a relative path from elsewhere: the result is the same.
  fs::current_path(dir.path());
  Config c = loadConfig("etc/mxgate.toml");
  fs::current_path("/");
  EXPECT_EQ(c.dir, dir.path() + "/etc");
  EXPECT_EQ(c.state_dir, dir.path() + "/etc/state");
  EXPECT_EQ(c.spool_dir, dir.path() + "/spool");
  EXPECT_EQ(c.log_file, dir.path() + "/etc/log/mxgate.log");
  EXPECT_EQ(c.tls.cert_file, dir.path() + "/etc/tls/cert.pem");
  EXPECT_EQ(c.tls.key_file, "/abs/key.pem");
  EXPECT_EQ(c.resolvePath("a/./b/../c"), dir.path() + "/etc/a/c");
  EXPECT_EQ(c.resolvePath(""), "");
}

TEST(LoadConfig, SyntaxErrorHasFileAndLine) {
  TempDir dir;
  const std::string file = dir.write("mxgate.toml", "[server]\nthreads = 2\nlisten = [\"x\"\n\n");
  auto e = configError(file);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->file(), file);
  EXPECT_GE(e->line(), 3u);
}

TEST(LoadRuntime, BuildsTheRegisteredFilters) {
  TempDir dir;
  const std::string file =
      dir.write("mxgate.toml", "[filters.lists]\ndeny_ips = [\"192.0.2.0/24\"]\n");
  auto rt = loadRuntime(file);
  ASSERT_NE(rt, nullptr);
  std::vector<std::string> names;
  for (const auto& e : rt->pipeline.entries()) names.push_back(e.spec.name);
  EXPECT_EQ(names, (std::vector<std::string>{"abuse", "lists", "hook"}));
  // abuse runs after lists at connect.
  ASSERT_EQ(rt->pipeline.order(Stage::kConnect).size(), 2u);
  EXPECT_EQ(rt->pipeline.entries()[rt->pipeline.order(Stage::kConnect)[0]].spec.name, "lists");
  ASSERT_NE(rt->symbols.find("LIST_DENY_IP"), nullptr);
  EXPECT_EQ(rt->symbols.find("LIST_DENY_IP")->weight, 20);
}

TEST(LoadRuntime, SymbolsOverrideDeclaredWeights) {
  TempDir dir;
  const std::string file =
      dir.write("mxgate.toml", "[symbols]\nLIST_DENY_IP = 7.5\nLIST_ALLOW_SENDER = -3\n");
  auto rt = loadRuntime(file);
  EXPECT_EQ(rt->symbols.find("LIST_DENY_IP")->weight, 7.5);
  EXPECT_EQ(rt->symbols.find("LIST_ALLOW_SENDER")->weight, -3);
  EXPECT_EQ(rt->symbols.find("LIST_DENY_SENDER")->weight, 20) << "untouched default";
}

TEST(LoadRuntime, UndeclaredOrBadSymbolFailsAtItsLine) {
  TempDir dir;
  const std::string undeclared =
      dir.write("a.toml", "[symbols]\nLIST_DENY_IP = 1\nNOT_DECLARED = 2\n");
  auto e = runtimeError(undeclared);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->file(), undeclared);
  EXPECT_EQ(e->line(), 3u);
  EXPECT_EQ(e->message(), "symbols.NOT_DECLARED: no enabled filter declares symbol NOT_DECLARED");

  const std::string not_number = dir.write("b.toml", "[symbols]\n\nLIST_DENY_IP = \"high\"\n");
  auto n = runtimeError(not_number);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->line(), 3u);
  EXPECT_EQ(n->message(), "symbols.LIST_DENY_IP: weight must be a number");

  // A disabled filter's symbols are not declared.
  const std::string disabled =
      dir.write("c.toml", "[filters.lists]\nenabled = false\n\n[symbols]\nLIST_DENY_IP = 1\n");
  auto d = runtimeError(disabled);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->line(), 5u);
}

TEST(LoadRuntime, FilterSectionErrorsNameFileAndLine) {
  TempDir dir;
  const std::string nosuch = dir.write("a.toml", "[filters.lists]\n\n[filters.greylst]\n");
  auto e = runtimeError(nosuch);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->file(), nosuch);
  EXPECT_EQ(e->line(), 3u);
  EXPECT_EQ(e->message(), "filters.greylst: no such filter");

  const std::string bad_key = dir.write("b.toml", "[filters.lists]\ndeny_ipz = []\n");
  auto k = runtimeError(bad_key);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->line(), 2u);
  EXPECT_EQ(k->message(), "filters.lists.deny_ipz: unknown setting");
}

}  // namespace
}  // namespace mxgate

namespace mxgate {
namespace {

TEST(LoadConfig, RoutesAreReadInOrder) {
  TempDir dir;
  dir.write("relay.secret", "hunter2-but-longer\n");
  const std::string file = dir.write("mxgate.toml", R"([[route]]
name = "inside"
domains = ["Example.COM", ".example.com"]
type = "forward"
hosts = ["10.0.0.5", "[2001:db8::5]:2525 weight=3"]
host_selection = "weighted"
tls = "encrypt"
auth_user = "gw"
auth_password_file = "relay.secret"
concurrency = 4

[[route]]
domains = ["partner.example"]
type = "backup_mx"

[[route]]
domains = ["*"]
type = "smarthost"
hosts = ["relay.example.net:587"]
priority = "1-3"
)");
  Config c = loadConfig(file);
  ASSERT_EQ(c.delivery.routes.size(), 3u);
  const RouteConfig& a = c.delivery.routes[0];
  EXPECT_EQ(a.name, "inside");
  EXPECT_EQ(a.domains, (std::vector<std::string>{"example.com", ".example.com"}));
  ASSERT_EQ(a.hosts.size(), 2u);
  EXPECT_EQ(a.hosts[0].port, 25);
  EXPECT_EQ(a.hosts[1].host, "2001:db8::5");
  EXPECT_EQ(a.hosts[1].port, 2525);
  EXPECT_EQ(a.hosts[1].weight, 3u);
  EXPECT_TRUE(a.weighted);
  EXPECT_EQ(a.auth_password, "hunter2-but-longer");
  EXPECT_EQ(a.concurrency, 4u);
  EXPECT_TRUE(a.matches("example.com", 5));
  EXPECT_TRUE(a.matches("mail.example.com", 5));
  EXPECT_FALSE(a.matches("badexample.com", 5));
  const RouteConfig& b = c.delivery.routes[1];
  EXPECT_EQ(b.name, "route2");
  EXPECT_EQ(b.retry_schedule, (std::vector<std::chrono::seconds>{10min, 10min, 10min, 1440min}));
  const RouteConfig& s = c.delivery.routes[2];
  EXPECT_TRUE(s.matches("anything.test", 2));
  EXPECT_FALSE(s.matches("anything.test", 5));
}

TEST(LoadConfig, RouteErrorsNameFileAndLine) {
  expectErrors({
      {"[[route]]\ndomains = [\"a.test\"]\ntype = \"teleport\"\n", 3,
       "route.type: must be local, forward, smarthost, mx or backup_mx (got \"teleport\")"},
      {"[[route]]\ndomains = [\"a.test\"]\ntype = \"forward\"\n", 1,
       "route.hosts: a forward route needs hosts"},
      {"[[route]]\ndomains = [\"a.test\"]\ntype = \"forward\"\nhosts = [\"h:99999\"]\n", 4,
       "route.hosts: \"h:99999\": port must be a number from 1 to 65535"},
      {"[[route]]\ndomains = [\"a.test\"]\ntype = \"mx\"\npriority = \"3-2\"\n", 4,
       "route.priority: must be a range \"a-b\" within 1-10"},
      {"[[route]]\ndomains = [\"a.test\"]\ntype = \"mx\"\npriority = \"1-5x\"\n", 4,
       "route.priority: must be a range \"a-b\" within 1-10"},
      {"[[route]]\ndomains = []\ntype = \"mx\"\n", 2,
       "route.domains: needs at least one domain (\"*\" for any)"},
  });
}

}  // namespace
}  // namespace mxgate
