#include "gateway/queue/maildir_agent.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "gateway/queue/queue_testing.h"

namespace mxgate {
namespace {

namespace fs = std::filesystem;
using testing::queueMeta;
using testing::TempDir;

std::vector<fs::path> filesIn(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(MaildirAgent, WritesIntoNewWithHeadersAndExactBytes) {
  TempDir tmp;
  MaildirAgent agent({tmp.path(), 0, "mx1"});
  SpoolMeta meta = queueMeta("Q1", {"Bob@Example.COM"});
  std::string body = "Subject: hi\r\n\r\nbody \x01\xff line\r\n";
  DeliveryResult r = agent.deliver(meta, body, meta.envelope.rcpts[0]);
  ASSERT_EQ(r.kind, DeliveryResult::Kind::kDelivered) << r.reply;

  fs::path md = fs::path(tmp.path()) / "example.com" / "bob" / "Maildir";
  EXPECT_TRUE(filesIn(md / "tmp").empty());
  EXPECT_TRUE(filesIn(md / "cur").empty());
  auto files = filesIn(md / "new");
  ASSERT_EQ(files.size(), 1u);
  std::string content = slurp(files[0]);
  EXPECT_EQ(content,
            "Return-Path: <sender@example.org>\r\nDelivered-To: Bob@Example.COM\r\n" + body);
  std::string name = files[0].filename().string();
  EXPECT_NE(name.find(".mx1,S=" + std::to_string(content.size())), std::string::npos) << name;
  struct stat st {};
  ASSERT_EQ(::stat(md.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  // A second delivery gets a distinct name.
  ASSERT_EQ(agent.deliver(meta, body, meta.envelope.rcpts[0]).kind,
            DeliveryResult::Kind::kDelivered);
  EXPECT_EQ(filesIn(md / "new").size(), 2u);
}

TEST(MaildirAgent, MapsAddressesAndRefusesUnsafeNames) {
  std::string path, error;
  ASSERT_TRUE(MaildirAgent::maildirPath("/r", "PostMaster", &path, &error));
  EXPECT_EQ(path, "/r/postmaster/Maildir");
  ASSERT_TRUE(MaildirAgent::maildirPath("/r", "A.B+x@D.org", &path, &error));
  EXPECT_EQ(path, "/r/d.org/a.b+x/Maildir");
  for (const std::string& bad :
       std::vector<std::string>{"../x@d.org", ".x@d.org", "a/b@d.org", "x@..", "x@a/b", "@d.org",
                                "nodomain", std::string("a\0b@d.org", 9), "x@"}) {
    EXPECT_FALSE(MaildirAgent::maildirPath("/r", bad, &path, &error)) << bad;
  }

  TempDir tmp;
  MaildirAgent agent({tmp.path(), 0, ""});
  SpoolMeta meta = queueMeta("Q1", {"../etc@d.org"});
  DeliveryResult r = agent.deliver(meta, "x\n", meta.envelope.rcpts[0]);
  EXPECT_EQ(r.kind, DeliveryResult::Kind::kFailed);
  EXPECT_EQ(r.reply.rfind("5.1.3", 0), 0u) << r.reply;
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(MaildirAgent, LfMessageGetsLfHeaders) {
  TempDir tmp;
  MaildirAgent agent({tmp.path(), 0, "h"});
  SpoolMeta meta = queueMeta("Q1", {"postmaster"});
  meta.envelope.mail_from = "";
  ASSERT_EQ(agent.deliver(meta, "A: b\n\nx\n", meta.envelope.rcpts[0]).kind,
            DeliveryResult::Kind::kDelivered);
  auto files = filesIn(fs::path(tmp.path()) / "postmaster" / "Maildir" / "new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(slurp(files[0]), "Return-Path: <>\nDelivered-To: postmaster\nA: b\n\nx\n");
}

TEST(MaildirAgent, OverQuotaIsDeferred) {
  TempDir tmp;
  MaildirAgent agent({tmp.path(), 200, "h"});
  SpoolMeta meta = queueMeta("Q1", {"u@d.org"});
  std::string body(100, 'x');
  ASSERT_EQ(agent.deliver(meta, body, meta.envelope.rcpts[0]).kind,
            DeliveryResult::Kind::kDelivered);
  DeliveryResult r = agent.deliver(meta, body, meta.envelope.rcpts[0]);
  EXPECT_EQ(r.kind, DeliveryResult::Kind::kDeferred);
  EXPECT_EQ(r.reply, "4.2.2 mailbox full");
  EXPECT_TRUE(filesIn(fs::path(tmp.path()) / "d.org" / "u" / "Maildir" / "tmp").empty());
}

TEST(MaildirAgent, FilesystemErrorIsDeferredWithReason) {
  TempDir tmp;
  std::string root = tmp.path() + "/file";
  std::ofstream(root) << "not a directory";  // ENOTDIR even as root
  MaildirAgent agent({root, 0, "h"});
  SpoolMeta meta = queueMeta("Q1", {"u@d.org"});
  DeliveryResult r = agent.deliver(meta, "x\n", meta.envelope.rcpts[0]);
  EXPECT_EQ(r.kind, DeliveryResult::Kind::kDeferred);
  EXPECT_NE(r.reply.find("Not a directory"), std::string::npos) << r.reply;
}

}  // namespace
}  // namespace mxgate
