#include "gateway/queue/maildir_agent.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

namespace mxgate {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// A name used as one path component: see the header for what is refused.
bool safeComponent(std::string_view s) {
  if (s.empty() || s.front() == '.') return false;
  for (unsigned char c : s)
    if (c == '/' || c < 0x20 || c == 0x7f) return false;
  return true;
}

int fsyncPath(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

// Creates dir (mode 0700) if missing; a new entry is made durable by syncing
// its parent, so a delivered file's path survives a crash too.
int ensureDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) {
    std::string parent = std::filesystem::path(dir).parent_path().string();
    return fsyncPath(parent.empty() ? "." : parent);
  }
  return errno == EEXIST ? 0 : errno;
}

int writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

DeliveryResult deferred(int err, std::string_view what) {
  const char* status = err == EDQUOT ? "4.2.2" : err == ENOSPC ? "4.3.1" : "4.3.0";
  return {DeliveryResult::Kind::kDeferred,
          fmt::format("{} maildir {}: {}", status, what, std::strerror(err))};
}

// Bytes in the files of new/ and cur/ (errors count as 0: the quota is advisory).
uint64_t maildirSize(const std::string& maildir) {
  uint64_t total = 0;
  for (const char* sub : {"/new", "/cur"}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(maildir + sub, ec)) {
      std::error_code size_ec;
      uint64_t n = e.file_size(size_ec);
      if (!size_ec) total += n;
    }
  }
  return total;
}

}  // namespace

MaildirAgent::MaildirAgent(Options options) : options_(std::move(options)) {
  if (options_.hostname.empty()) {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) == 0) options_.hostname = buf;
    if (options_.hostname.empty()) options_.hostname = "localhost";
  }
  for (char c : options_.hostname) {
    if (c == '/')
      host_part_ += "\\057";
    else if (c == ':')
      host_part_ += "\\072";
    else
      host_part_ += c;
  }
}

bool MaildirAgent::maildirPath(const std::string& root, std::string_view address, std::string* path,
                               std::string* error) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos) {
    if (lower(address) == "postmaster") {
      *path = root + "/postmaster/Maildir";
      return true;
    }
    *error = "5.1.3 recipient address has no domain";
    return false;
  }
  std::string local = lower(address.substr(0, at));
  std::string domain = lower(address.substr(at + 1));
  if (!safeComponent(domain)) {
    *error = "5.1.3 domain cannot be used as a mailbox path";
    return false;
  }
  if (!safeComponent(local)) {
    *error = "5.1.3 local part cannot be used as a mailbox path";
    return false;
  }
  *path = root + "/" + domain + "/" + local + "/Maildir";
  return true;
}

std::string MaildirAgent::uniqueName(uint64_t size) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  // The counter makes names unique within the process; the pid across
  // processes on this host; the hostname across hosts sharing the Maildir.
  return fmt::format("{}.{}_{}.{},S={}",
                     std::chrono::duration_cast<std::chrono::seconds>(now).count(), ::getpid(),
                     counter_.fetch_add(1), host_part_, size);
}

DeliveryResult MaildirAgent::deliver(const SpoolMeta& meta, std::string_view message,
                                     const Recipient& rcpt) {
  std::string maildir, error;
  if (!maildirPath(options_.root, rcpt.address, &maildir, &error))
    return {DeliveryResult::Kind::kFailed, error};

  // Every directory from the root down, so a fresh domain or user just works.
  std::string rel = maildir.substr(options_.root.size());
  std::string dir = options_.root;
  if (int err = ensureDir(dir)) return deferred(err, "cannot create " + dir);
  for (size_t pos = 1; pos <= rel.size(); ++pos) {
    if (pos == rel.size() || rel[pos] == '/') {
      dir = options_.root + rel.substr(0, pos);
      if (int err = ensureDir(dir)) return deferred(err, "cannot create " + dir);
    }
  }
  for (const char* sub : {"/tmp", "/new", "/cur"})
    if (int err = ensureDir(maildir + sub)) return deferred(err, "cannot create " + maildir + sub);

  size_t first_eol = message.find('\n');
  const char* eol =
      first_eol != std::string_view::npos && first_eol > 0 && message[first_eol - 1] == '\r'
          ? "\r\n"
          : "\n";
  std::string head = fmt::format("Return-Path: <{}>{}Delivered-To: {}{}", meta.envelope.mail_from,
                                 eol, rcpt.address, eol);
  uint64_t size = head.size() + message.size();

  if (options_.quota > 0 && maildirSize(maildir) + size > options_.quota)
    return {DeliveryResult::Kind::kDeferred, "4.2.2 mailbox full"};

  std::string name = uniqueName(size);
  std::string tmp_path = maildir + "/tmp/" + name;
  std::string new_path = maildir + "/new/" + name;
  int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return deferred(errno, "cannot create " + tmp_path);
  int err = writeAll(fd, head);
  if (err == 0) err = writeAll(fd, message);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  // close() can report a deferred write error (e.g. on NFS): it counts too.
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp_path.c_str());
    return deferred(err, "cannot write " + tmp_path);
  }
  if (::rename(tmp_path.c_str(), new_path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp_path.c_str());
    return deferred(err, "cannot move into new/");
  }
  // Until new/ is synced the rename may be lost in a crash: not yet delivered.
  // (If this fails the file stays in new/ and a retry delivers it again:
  // at-least-once, never lost.)
  if (int sync_err = fsyncPath(maildir + "/new")) return deferred(sync_err, "cannot sync new/");
  return {DeliveryResult::Kind::kDelivered, "2.0.0 delivered to maildir as " + name};
}

}  // namespace mxgate
