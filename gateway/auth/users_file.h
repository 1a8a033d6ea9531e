// The SMTP AUTH users file ([submission] users_file): one user per line,
//
//   # comment
//   alice:$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>
//   bob@example.org:$y$j9T$<salt>$<hash>
//
// Names are case-insensitive (kept lower-cased), unique, without ':',
// spaces or control characters, and do not start with '#'. Blank lines and
// lines starting with '#' are ignored. Hashes are argon2id or yescrypt (see
// password_hash.h). Any other line is an error with file:line, so a typo
// never silently locks a user out.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mxgate {

// Why `name` cannot be a user name, or empty if it can.
std::string checkUserName(std::string_view name);

// The parsed file, for lookups. Immutable once loaded.
class UserDb {
 public:
  // Throws ConfigError (path:line: message); an unreadable file has line 0.
  static UserDb load(const std::string& path);
  static UserDb parse(std::string_view text, const std::string& path);

  // The stored hash, or nullptr. name is matched case-insensitively.
  const std::string* find(std::string_view name) const;
  size_t size() const { return hashes_.size(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unordered_map<std::string, std::string> hashes_;  // lower-cased name -> hash
};

// The file as text lines, for mxgatectl: edits keep comments, blank lines
// and the order of the other users.
class UsersFileEditor {
 public:
  // A missing file reads as empty. Throws ConfigError like UserDb::load, so
  // a broken file is never rewritten.
  static UsersFileEditor read(const std::string& path);

  bool contains(std::string_view name) const;
  // Replaces name's hash or appends a line for name. name must pass checkUserName.
  void set(std::string_view name, const std::string& hash);
  bool remove(std::string_view name);
  // (name, hash) in file order.
  std::vector<std::pair<std::string, std::string>> users() const;
  std::string text() const;

  // Atomically replaces the file: a temporary file beside it, mode 0640
  // (keeping an existing file's owner and group where permitted; a new file
  // gets new_gid when that is not -1), fsync, rename, fsync of the directory.
  // Throws std::runtime_error naming the path.
  void write(int new_gid = -1) const;

 private:
  struct Line {
    std::string text;
    std::string name;  // lower-cased; empty for comments and blank lines
  };
  std::string path_;
  std::vector<Line> lines_;
};

}  // namespace mxgate
