#include "filters/hook/hook_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace mxgate {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kStdoutKeep = 4096;  // enough for a first line; the rest is drained
constexpr size_t kStderrKeep = 1024;
constexpr milliseconds kMaxPollStep{20};

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// The message file; unlinked when the run is over, however it ended.
class TempFile {
 public:
  TempFile(const std::string& dir, std::string_view content) {
    path_ = (dir.empty() ? std::string("/tmp") : dir) + "/mxgate-hook.XXXXXX";
    Fd fd(::mkostemp(path_.data(), O_CLOEXEC));  // mode 0600
    if (fd.get() < 0) {
      int err = errno;
      path_.clear();
      fail("cannot create a temporary file in " + (dir.empty() ? std::string("/tmp") : dir), err);
    }
    size_t done = 0;
    while (done < content.size()) {
      ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("cannot write " + path_, errno);
      done += static_cast<size_t>(n);
    }
  }
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class SpawnAttr {
 public:
  SpawnAttr() {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
  }
  ~SpawnAttr() {
    posix_spawnattr_destroy(&attr_);
    posix_spawn_file_actions_destroy(&actions_);
  }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

// Reads what is there without blocking; false at end of file.
bool drain(int fd, std::string& keep, size_t limit) {
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      if (keep.size() < limit)
        keep.append(buf, std::min(static_cast<size_t>(n), limit - keep.size()));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;  // other errors: treat as closed
  }
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) {
    if (!out.empty()) out += ' ';
    out += s;
  }
  return out;
}

}  // namespace

bool parseHookArg(std::string_view text, HookArg* out, std::string* error) {
  static const std::pair<std::string_view, HookVar> kVars[] = {
      {"filepath", HookVar::kFilepath},
      {"sender", HookVar::kSender},
      {"recipients", HookVar::kRecipients},
      {"client_ip", HookVar::kClientIp},
      {"helo", HookVar::kHelo},
  };
  out->clear();
  std::string literal;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '%') {
      literal += text[i++];
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '%') {
      literal += '%';
      i += 2;
      continue;
    }
    size_t start = ++i;
    while (i < text.size() && ((text[i] >= 'a' && text[i] <= 'z') || text[i] == '_')) ++i;
    std::string_view name = text.substr(start, i - start);
    const HookVar* var = nullptr;
    for (const auto& [n, v] : kVars)
      if (n == name) var = &v;
    if (var == nullptr) {
      *error = "unknown placeholder \"%" + std::string(name) +
               "\" (known: %filepath, %sender, %recipients, %client_ip, %helo; %% for '%')";
      return false;
    }
    if (!literal.empty()) out->push_back({false, {}, std::move(literal)});
    literal.clear();
    out->push_back({true, *var, {}});
  }
  if (!literal.empty() || out->empty()) out->push_back({false, {}, std::move(literal)});
  return true;
}

std::vector<std::string> expandHookCommand(const std::vector<HookArg>& command,
                                           const HookValues& v) {
  std::vector<std::string> argv;
  for (const HookArg& arg : command) {
    if (arg.size() == 1 && arg[0].is_var && arg[0].var == HookVar::kRecipients) {
      argv.insert(argv.end(), v.recipients.begin(), v.recipients.end());
      continue;
    }
    std::string s;
    for (const HookArgPiece& p : arg) {
      if (!p.is_var) {
        s += p.text;
        continue;
      }
      switch (p.var) {
        case HookVar::kFilepath:
          s += v.filepath;
          break;
        case HookVar::kSender:
          s += v.sender;
          break;
        case HookVar::kRecipients:
          s += joined(v.recipients);
          break;
        case HookVar::kClientIp:
          s += v.client_ip;
          break;
        case HookVar::kHelo:
          s += v.helo;
          break;
      }
    }
    argv.push_back(std::move(s));
  }
  return argv;
}

std::string sanitizeReplyText(std::string_view text, size_t max_len) {
  std::string out;
  for (char c : text) {
    if (c == '\t') c = ' ';
    if (c < 0x20 || c > 0x7e) continue;
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += c;
    if (out.size() >= max_len) break;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

HookExit runHook(HookJob& job) {
  const auto started = Clock::now();
  TempFile file(job.temp_dir, job.message);
  job.values.filepath = file.path();

  std::vector<std::string> argv = expandHookCommand(job.command, job.values);
  std::vector<std::string> env = {
      "PATH=" + job.path_env,
      "MXGATE_FILE=" + job.values.filepath,
      "MXGATE_SENDER=" + job.values.sender,
      "MXGATE_RECIPIENTS=" + joined(job.values.recipients),
      "MXGATE_CLIENT_IP=" + job.values.client_ip,
      "MXGATE_HELO=" + job.values.helo,
  };
  std::vector<char*> cargv, cenv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (std::string& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) fail("pipe", errno);
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) fail("pipe", errno);
  Fd err_r(err_pipe[0]), err_w(err_pipe[1]);

  SpawnAttr sa;
  // dup2 clears close-on-exec on 1 and 2; everything else of ours is closed.
  posix_spawn_file_actions_addopen(&sa.actions_, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&sa.actions_, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&sa.actions_, err_w.get(), 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  posix_spawn_file_actions_addclosefrom_np(&sa.actions_, 3);
#endif
  // A group of its own, so a timeout kills whatever the hook started; default
  // signal dispositions and an empty mask whatever this thread had.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setpgroup(&sa.attr_, 0);
  posix_spawnattr_setsigmask(&sa.attr_, &none);
  posix_spawnattr_setsigdefault(&sa.attr_, &all);
  posix_spawnattr_setflags(&sa.attr_,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = 0;
  int err = ::posix_spawn(&pid, cargv[0], &sa.actions_, &sa.attr_, cargv.data(), cenv.data());
  if (err != 0) fail("cannot run " + argv[0], err);
  out_w.reset();
  err_w.reset();
  ::fcntl(out_r.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(err_r.get(), F_SETFL, O_NONBLOCK);

  HookExit result;
  std::string out, errs;
  const auto deadline = started + job.timeout;
  int status = 0;
  bool exited = false;
  milliseconds idle_step{1};
  while (true) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      exited = true;
      break;
    }
    if (w < 0 && errno != EINTR) {
      int e = errno;
      ::kill(-pid, SIGKILL);
      fail("cannot wait for " + argv[0], e);
    }
    auto now = Clock::now();
    if (now >= deadline) break;
    auto step = std::min(
        kMaxPollStep, std::chrono::duration_cast<milliseconds>(deadline - now) + milliseconds(1));
    pollfd fds[2];
    nfds_t n = 0;
    if (out_r.get() >= 0) fds[n++] = {out_r.get(), POLLIN, 0};
    if (err_r.get() >= 0) fds[n++] = {err_r.get(), POLLIN, 0};
    if (n == 0) {
      // Output closed but the process lives on: wait for it with a backoff.
      std::this_thread::sleep_for(std::min(step, idle_step));
      idle_step = std::min(idle_step * 2, kMaxPollStep);
      continue;
    }
    if (::poll(fds, n, static_cast<int>(step.count())) <= 0) continue;
    if (out_r.get() >= 0 && !drain(out_r.get(), out, kStdoutKeep)) out_r.reset();
    if (err_r.get() >= 0 && !drain(err_r.get(), errs, kStderrKeep)) err_r.reset();
  }
  if (exited) {
    // What the program wrote just before it ended is still in the pipes.
    if (out_r.get() >= 0) drain(out_r.get(), out, kStdoutKeep);
    if (err_r.get() >= 0) drain(err_r.get(), errs, kStderrKeep);
    if (WIFEXITED(status)) {
      result.kind = HookExit::Kind::kExited;
      result.code = WEXITSTATUS(status);
    } else {
      result.kind = HookExit::Kind::kSignaled;
      result.code = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
  } else {
    result.kind = HookExit::Kind::kTimedOut;
    ::kill(-pid, SIGTERM);
    const auto grace_end = Clock::now() + job.kill_grace;
    while (::waitpid(pid, &status, WNOHANG) == 0 && Clock::now() < grace_end)
      std::this_thread::sleep_for(milliseconds(5));
    // SIGKILL the group even if the leader went: its children may live on.
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  result.first_line = sanitizeReplyText(std::string_view(out).substr(0, out.find('\n')));
  result.stderr_head = sanitizeReplyText(errs, 300);
  result.elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
  return result;
}

}  // namespace mxgate
