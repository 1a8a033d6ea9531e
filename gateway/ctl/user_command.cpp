#include "gateway/ctl/user_command.h"

#include <pwd.h>
#include <sodium.h>
#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <optional>

#include <fmt/format.h>

#include "gateway/auth/password_hash.h"
#include "gateway/auth/users_file.h"
#include "gateway/config/config.h"
#include "gateway/config/runtime.h"

namespace mxgate {
namespace {

int usage(const std::string& msg) {
  std::cerr << "mxgatectl: " << msg << "\nTry 'mxgatectl help'.\n";
  return 2;
}

int failure(const std::string& msg) {
  std::cerr << "mxgatectl: " << msg << "\n";
  return 1;
}

// Wipes the password however the command ends.
struct Secret {
  std::string text;
  ~Secret() { sodium_memzero(text.data(), text.size()); }
};

bool readLine(std::string* out) {
  if (!std::getline(std::cin, *out)) return false;
  if (!out->empty() && out->back() == '\r') out->pop_back();
  return true;
}

// One line from the terminal with echo off (restored even if reading fails).
bool readHidden(const std::string& prompt, std::string* out) {
  std::cerr << prompt << std::flush;
  termios old{};
  bool restore = tcgetattr(STDIN_FILENO, &old) == 0;
  if (restore) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  bool ok = readLine(out);
  if (restore) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
  return ok;
}

// The new password: one line of standard input with --password-stdin, else
// typed twice on a terminal. Empty optional (after a message) on failure.
std::optional<std::string> newPassword(const std::string& user, bool from_stdin) {
  Secret first, second;
  if (from_stdin) {
    if (!readLine(&first.text)) {
      failure("no password on standard input");
      return std::nullopt;
    }
  } else {
    if (!isatty(STDIN_FILENO)) {
      failure(
          "standard input is not a terminal: use --password-stdin to read the password from it");
      return std::nullopt;
    }
    if (!readHidden("New password for " + user + ": ", &first.text) ||
        !readHidden("Retype the password: ", &second.text)) {
      failure("no password entered");
      return std::nullopt;
    }
    if (first.text != second.text) {
      failure("the passwords do not match; nothing changed");
      return std::nullopt;
    }
  }
  if (std::string why = weakPasswordReason(first.text, user); !why.empty()) {
    failure(why + "; nothing changed");
    return std::nullopt;
  }
  return std::move(first.text);
}

// The group a new users file gets when run as root: server.user's, so the
// daemon can read it after dropping privileges.
int daemonGroup(const std::optional<Config>& cfg) {
  if (geteuid() != 0 || !cfg || cfg->user.empty()) return -1;
  passwd* pw = getpwnam(cfg->user.c_str());
  return pw ? static_cast<int>(pw->pw_gid) : -1;
}

}  // namespace

int userCommand(const std::string& config_file, const std::vector<std::string>& args) {
  if (args.empty()) return usage("user needs add, passwd, del or list");
  const std::string& sub = args[0];
  std::string name, file;
  bool from_stdin = false;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--file" && i + 1 < args.size()) {
      file = args[++i];
    } else if (args[i] == "--password-stdin" && (sub == "add" || sub == "passwd")) {
      from_stdin = true;
    } else if (name.empty() && !args[i].empty() && args[i][0] != '-' && sub != "list") {
      name = args[i];
    } else {
      return usage("unexpected argument '" + args[i] + "'");
    }
  }
  if (sub != "add" && sub != "passwd" && sub != "del" && sub != "list")
    return usage("unknown user command '" + sub + "'");
  if (sub != "list" && name.empty()) return usage("user " + sub + " needs a user name");
  if (!name.empty()) {
    if (std::string why = checkUserName(name); !why.empty()) return failure(why);
  }
  std::optional<Config> cfg;
  if (file.empty()) {
    cfg = loadConfig(config_file);
    file = cfg->submission.users_file;
  }

  UsersFileEditor users = UsersFileEditor::read(file);
  if (sub == "list") {
    auto all = users.users();
    std::cout << fmt::format("{:<40}  {}\n", "USER", "HASH");
    for (const auto& [user, hash] : all)
      std::cout << fmt::format("{:<40}  {}\n", user, hashSchemeName(hashScheme(hash)));
    std::cout << "-- " << all.size() << " user(s) in " << file << "\n";
    return 0;
  }
  const bool exists = users.contains(name);
  if (sub == "add" && exists)
    return failure("user " + name + " exists in " + file + "; use 'mxgatectl user passwd " + name +
                   "'");
  if (sub != "add" && !exists) return failure("no user " + name + " in " + file);
  std::string done;
  if (sub == "del") {
    users.remove(name);
    done = "deleted user " + name + " from " + file;
  } else {
    auto password = newPassword(name, from_stdin);
    if (!password) return 1;
    Secret pw{std::move(*password)};
    users.set(name, hashPassword(pw.text));
    done = (sub == "add" ? "added user " + name + " to "
                         : "changed the password of " + name + " in ") +
           file;
  }
  users.write(daemonGroup(cfg));
  std::cout << done << "; reload mxgate (SIGHUP) to apply\n";
  return 0;
}

}  // namespace mxgate
