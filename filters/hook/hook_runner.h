// Runs one hook program for one message: the blocking half of the hook
// filter, meant for a WorkerPool thread, never for an event loop.
//
// The message goes to a private temporary file (mkstemp: 0600, a fresh
// name) that exists exactly while the program runs. The program is started
// with posix_spawn, no shell, in a process group of its own, with stdin
// /dev/null, stdout and stderr captured (bounded) and no other descriptor of
// ours. Past the timeout its whole group gets SIGTERM, and SIGKILL after the
// grace period, so a hook cannot hold a worker thread longer than
// timeout + kill_grace (plus the final wait for a killed process).
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace mxgate {

// Placeholders of the configured command ("%filepath" and so on).
enum class HookVar { kFilepath, kSender, kRecipients, kClientIp, kHelo };

// One command argument as literal text and placeholders.
struct HookArgPiece {
  bool is_var = false;
  HookVar var = HookVar::kFilepath;
  std::string text;  // when !is_var
};
using HookArg = std::vector<HookArgPiece>;

// Parses "%name" placeholders ("%%" is a literal '%'). False with *error for
// an unknown name or a lone '%'.
bool parseHookArg(std::string_view text, HookArg* out, std::string* error);

struct HookValues {
  std::string filepath;  // set by runHook
  std::string sender;    // "" for the null sender
  std::vector<std::string> recipients;
  std::string client_ip;
  std::string helo;
};

// The argv for the command. An argument that is exactly "%recipients"
// becomes one argument per recipient; inside other text the recipients are
// joined with spaces (as in MXGATE_RECIPIENTS). Values are substituted once:
// a "%filepath" inside an address stays literal.
std::vector<std::string> expandHookCommand(const std::vector<HookArg>& command,
                                           const HookValues& values);

// Everything one run needs, owned, so a cancelled caller leaves nothing dangling.
struct HookJob {
  std::vector<HookArg> command;  // REQUIRES: command[0] is a literal absolute path
  HookValues values;
  std::string message;
  std::string temp_dir;
  std::chrono::milliseconds timeout{20000};
  std::chrono::milliseconds kill_grace{2000};
  std::string path_env;  // PATH given to the program
};

struct HookExit {
  enum class Kind { kExited, kSignaled, kTimedOut };
  Kind kind = Kind::kExited;
  int code = 0;             // exit status, or the signal that ended it
  std::string first_line;   // stdout's first line: printable ASCII, trimmed, bounded
  std::string stderr_head;  // the start of stderr, one line, for the log
  std::chrono::milliseconds elapsed{0};
};

// Blocking. Throws std::runtime_error when the program cannot be run at all
// (temporary file, pipes, spawn, wait).
HookExit runHook(HookJob& job);

// Printable ASCII only, blanks collapsed, at most max_len characters.
std::string sanitizeReplyText(std::string_view text, size_t max_len = 200);

}  // namespace mxgate
