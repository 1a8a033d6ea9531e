#include "gateway/auth/users_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "gateway/auth/password_hash.h"
#include "gateway/config/config_error.h"
#include "gateway/util/strings.h"

namespace mxgate {
namespace {

constexpr size_t kMaxNameLength = 255;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Calls fn(line_number, raw_line, lower-cased name, hash) for each line;
// name and hash are empty for comments and blank lines. Throws ConfigError.
template <typename Fn>
void parseLines(std::string_view text, const std::string& path, Fn fn) {
  std::unordered_map<std::string, uint32_t> seen;
  uint32_t n = 0;
  while (!text.empty()) {
    ++n;
    size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') {
      fn(n, raw, std::string(), std::string_view());
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos)
      throw ConfigError(path, n, "expected NAME:HASH (see mxgatectl user add)");
    std::string_view name = line.substr(0, colon);
    std::string_view hash = line.substr(colon + 1);
    if (std::string why = checkUserName(name); !why.empty()) throw ConfigError(path, n, why);
    std::string lower = toLower(name);
    if (auto [it, fresh] = seen.emplace(lower, n); !fresh)
      throw ConfigError(
          path, n,
          "user " + lower + " is listed twice (first on line " + std::to_string(it->second) + ")");
    if (std::string why = checkHash(hash); !why.empty())
      throw ConfigError(path, n, "user " + lower + ": " + why);
    fn(n, raw, lower, hash);
  }
}

std::string readFile(const std::string& path, bool missing_ok) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (missing_ok && errno == ENOENT) return "";
    throw ConfigError(path, 0, std::string("cannot read the users file: ") + std::strerror(errno));
  }
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw ConfigError(path, 0, "cannot read the users file");
  return s.str();
}

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

}  // namespace

std::string checkUserName(std::string_view name) {
  if (name.empty()) return "empty user name";
  if (name.size() > kMaxNameLength)
    return "user name longer than " + std::to_string(kMaxNameLength) + " characters";
  if (name.front() == '#') return "a user name must not start with '#'";
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (c == ':' || c == ' ' || c == '\t' || u < 0x20 || u == 0x7f)
      return "a user name must not contain ':', spaces or control characters";
  }
  return "";
}

UserDb UserDb::load(const std::string& path) {
  return parse(readFile(path, false), path);
}

UserDb UserDb::parse(std::string_view text, const std::string& path) {
  UserDb db;
  db.path_ = path;
  parseLines(text, path, [&](uint32_t, std::string_view, std::string name, std::string_view hash) {
    if (!name.empty()) db.hashes_.emplace(std::move(name), std::string(hash));
  });
  return db;
}

const std::string* UserDb::find(std::string_view name) const {
  auto it = hashes_.find(toLower(name));
  return it == hashes_.end() ? nullptr : &it->second;
}

UsersFileEditor UsersFileEditor::read(const std::string& path) {
  UsersFileEditor e;
  e.path_ = path;
  std::string text = readFile(path, true);
  parseLines(text, path, [&](uint32_t, std::string_view raw, std::string name, std::string_view) {
    e.lines_.push_back({std::string(raw), std::move(name)});
  });
  // A final line without its newline gains one on write; no line is lost.
  return e;
}

bool UsersFileEditor::contains(std::string_view name) const {
  std::string lower = toLower(name);
  for (const Line& l : lines_)
    if (l.name == lower) return true;
  return false;
}

void UsersFileEditor::set(std::string_view name, const std::string& hash) {
  std::string lower = toLower(name);
  for (Line& l : lines_) {
    if (l.name == lower) {
      l.text = lower + ":" + hash;
      return;
    }
  }
  lines_.push_back({lower + ":" + hash, lower});
}

bool UsersFileEditor::remove(std::string_view name) {
  std::string lower = toLower(name);
  return std::erase_if(lines_, [&](const Line& l) { return l.name == lower; }) > 0;
}

std::vector<std::pair<std::string, std::string>> UsersFileEditor::users() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Line& l : lines_) {
    if (l.name.empty()) continue;
    std::string_view t = trim(l.text);
    out.emplace_back(l.name, std::string(t.substr(t.find(':') + 1)));
  }
  return out;
}

std::string UsersFileEditor::text() const {
  std::string out;
  for (const Line& l : lines_) out += l.text + "\n";
  return out;
}

void UsersFileEditor::write(int new_gid) const {
  namespace fs = std::filesystem;
  fs::path target(path_);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = (dir / ("." + target.filename().string() + ".XXXXXX")).string();
  int fd = mkstemp(tmp.data());
  if (fd < 0) fail("cannot create a temporary file in", dir.string());
  auto cleanup = [&] {
    int saved = errno;
    close(fd);
    unlink(tmp.c_str());
    errno = saved;
  };
  struct stat old {};
  bool exists = stat(path_.c_str(), &old) == 0;
  // Owner and group first, then the mode: fchown may clear set-id bits.
  if (exists) {
    if (fchown(fd, old.st_uid, old.st_gid) != 0 && errno != EPERM) {
      cleanup();
      fail("cannot set the owner of", tmp);
    }
  } else if (new_gid >= 0 && fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(new_gid)) != 0 &&
             errno != EPERM) {
    cleanup();
    fail("cannot set the group of", tmp);
  }
  if (fchmod(fd, 0640) != 0) {
    cleanup();
    fail("cannot set the mode of", tmp);
  }
  std::string data = text();
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      cleanup();
      fail("cannot write", tmp);
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    cleanup();
    fail("cannot sync", tmp);
  }
  if (close(fd) != 0) {
    unlink(tmp.c_str());
    fail("cannot write", tmp);
  }
  if (rename(tmp.c_str(), path_.c_str()) != 0) {
    int saved = errno;
    unlink(tmp.c_str());
    errno = saved;
    fail("cannot replace", path_);
  }
  // The rename is durable only once the directory is.
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
}

}  // namespace mxgate
