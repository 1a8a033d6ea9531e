// Against real servers on 127.0.0.1: Postfix's smtp-sink and Python's
// aiosmtpd, started here (skipped when not installed).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "gateway/smtp_client/client_testing.h"
#include "gateway/smtp_client/connection_cache.h"
#include "gateway/smtp_client/delivery.h"
#include "gateway/util/temp_dir.h"

extern char** environ;

namespace mxgate::smtp_client {
namespace {

using testing::ClientTest;

// A child process, terminated and reaped on destruction.
class Child {
 public:
  ~Child() { stop(); }
  bool start(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    // Quiet: the servers log every session on stdout.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    bool ok = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) == 0;
    posix_spawn_file_actions_destroy(&actions);
    return ok;
  }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

uint16_t freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// Waits (at most about 10 s) until something accepts on port.
bool waitForPort(uint16_t port) {
  for (int i = 0; i < 200; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class InteropTest : public ClientTest {
 protected:
  void TearDown() override {
    cache.closeAll();
    ClientTest::TearDown();
  }
  DeliveryReport deliverTo(const Endpoint& ep, const OutboundMessage& m) {
    const std::vector<Endpoint> eps = {ep};
    auto fn = [&]() -> asio::awaitable<DeliveryReport> {
      co_return co_await deliverToEndpoints(eps, &cache, m, opts);
    };
    return run(fn());
  }
  Endpoint at(uint16_t port, std::string name = "localhost") {
    return {std::move(name), asio::ip::make_address("127.0.0.1"), port};
  }

  // Leading dots, a bare LF, a bare CR and no final line end.
  const std::string body =
      "Subject: interop\r\n\r\n.leading dot\r\n..two dots\nbare lf\rbare cr\r\n.\r\nlast";
  ConnectionCache cache{ctx.get_executor()};
  mxgate::testing::TempDir dir{"smtp-client-interop"};
};

TEST_F(InteropTest, SmtpSink) {
  const char* sink = "/usr/sbin/smtp-sink";
  if (access(sink, X_OK) != 0) GTEST_SKIP() << sink << " not installed (postfix)";
  chmod(dir.path().c_str(), 0777);  // smtp-sink drops to nobody when run as root
  const uint16_t port = freePort();
  std::vector<std::string> argv = {sink, "-c", "-D", dir.path() + "/dump"};
  if (geteuid() == 0) argv.insert(argv.begin() + 1, {"-u", "nobody"});
  argv.push_back("127.0.0.1:" + std::to_string(port));
  argv.push_back("100");
  Child child;
  ASSERT_TRUE(child.start(argv));
  ASSERT_TRUE(waitForPort(port)) << "smtp-sink did not start";

  for (int i = 0; i < 3; ++i) {
    OutboundMessage m = message({"a@example.com", "b@example.com"}, body);
    m.rcpts[0].notify = "SUCCESS,FAILURE";
    m.rcpts[0].orcpt = "rfc822;a@example.com";
    m.envid = "ENV" + std::to_string(i);
    DeliveryReport rep = deliverTo(at(port), m);
    ASSERT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();
    EXPECT_EQ(rep.rcpts[0].enhanced, "2.0.0");
  }
  EXPECT_EQ(cache.stats().reused, 2u) << "one connection for the three messages";
  cache.closeAll();
  idle(200ms);
  child.stop();
  const std::string dump = readFile(dir.path() + "/dump");
  // The dump holds the unstuffed content with LF line ends.
  size_t n = 0;
  for (size_t p = 0; (p = dump.find("X-Mail-Args: <sender@example.org>", p)) != std::string::npos;
       ++p) {
    ++n;
  }
  EXPECT_EQ(n, 3u) << dump;
  EXPECT_NE(dump.find("ENVID=ENV2"), std::string::npos) << dump;
  EXPECT_NE(dump.find("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.com"), std::string::npos);
  EXPECT_NE(dump.find("\n.leading dot\n..two dots\nbare lf\nbare cr\n.\nlast\n"), std::string::npos)
      << dump;
}

// Throughput over one reused connection; run by hand:
//   mxgate_unit_tests --gtest_also_run_disabled_tests --gtest_filter='*SmtpSinkThroughput'
TEST_F(InteropTest, DISABLED_SmtpSinkThroughput) {
  const char* sink = "/usr/sbin/smtp-sink";
  if (access(sink, X_OK) != 0) GTEST_SKIP() << sink << " not installed (postfix)";
  const uint16_t port = freePort();
  std::vector<std::string> argv = {sink, "127.0.0.1:" + std::to_string(port), "100"};
  if (geteuid() == 0) argv.insert(argv.begin() + 1, {"-u", "nobody"});
  Child child;
  ASSERT_TRUE(child.start(argv));
  ASSERT_TRUE(waitForPort(port));
  std::string text = "Subject: load\r\n\r\n";
  while (text.size() < 4096) text += "a line of text of about sixty bytes, repeated to fill.\r\n";
  OutboundMessage m = message({"a@example.com", "b@example.com"}, text);
  const std::vector<Endpoint> eps = {at(port)};
  constexpr int kMessages = 5000;
  int accepted = 0;
  auto fn = [&]() -> asio::awaitable<int> {
    for (int i = 0; i < kMessages; ++i) {
      DeliveryReport rep = co_await deliverToEndpoints(eps, &cache, m, opts);
      accepted += rep.allAccepted();
    }
    co_return accepted;
  };
  auto start = std::chrono::steady_clock::now();
  run(fn(), 120s);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(accepted, kMessages);
  std::cout << kMessages << " messages of " << text.size() << " bytes in " << secs
            << " s: " << kMessages / secs << " messages/s, "
            << kMessages - static_cast<int>(cache.stats().reused) << " connections\n";
}

TEST_F(InteropTest, AiosmtpdOverVerifiedTls) {
  const char* python = "/usr/bin/python3";
  if (access(python, X_OK) != 0 ||
      system("/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3-aiosmtpd not installed";
  }
  const std::string cert = dir.write("cert.pem", testing::testCertificate().cert_pem);
  const std::string key = dir.write("key.pem", testing::testCertificate().key_pem);
  const std::string maildir = dir.path() + "/maildir";
  const uint16_t port = freePort();
  Child child;
  ASSERT_TRUE(child.start({python, "-m", "aiosmtpd", "-n", "-l",
                           "127.0.0.1:" + std::to_string(port), "-s", "2000", "--tlscert", cert,
                           "--tlskey", key, "-c", "aiosmtpd.handlers.Mailbox", maildir}));
  ASSERT_TRUE(waitForPort(port)) << "aiosmtpd did not start";

  opts.tls = TlsPolicy::kVerify;
  opts.ca_file = cert;
  OutboundMessage m = message({"a@example.com", "b@example.com"}, body);
  DeliveryReport rep = deliverTo(at(port), m);
  ASSERT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();

  // Its SIZE limit is 2000: a bigger message is refused before MAIL.
  OutboundMessage big = message({"a@example.com"}, std::string(3000, 'x'));
  rep = deliverTo(at(port), big);
  EXPECT_EQ(rep.rcpts[0].enhanced, "5.3.4");

  cache.closeAll();
  idle(200ms);
  child.stop();
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(maildir + "/new")) {
    files.push_back(e.path());
  }
  ASSERT_EQ(files.size(), 1u);
  const std::string got = readFile(files[0]);
  EXPECT_NE(got.find("\n.leading dot\n..two dots\nbare lf\nbare cr\n.\nlast"), std::string::npos)
      << got;
  EXPECT_NE(got.find("X-RcptTo: a@example.com, b@example.com"), std::string::npos) << got;
}

}  // namespace
}  // namespace mxgate::smtp_client
