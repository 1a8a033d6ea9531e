#include "filters/hook/hook_filter.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "filters/hook/hook_runner.h"
#include "gateway/config/config_error.h"
#include "gateway/config/table_reader.h"
#include "gateway/pipeline/symbol_table.h"
#include "gateway/pipeline/testing.h"
#include "gateway/util/temp_dir.h"
#include "gateway/util/worker_pool.h"

namespace mxgate {
namespace {

namespace fs = std::filesystem;
using Kind = StageResult::Kind;
using Clock = std::chrono::steady_clock;

const std::string kMessage = "From: <a@origin.example>\r\nSubject: hi\r\n\r\nbody\r\n";

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Builds the filter from a [filters.hook] body with scripts in a private
// directory, and runs the data stage on one message.
class HookHarness {
 public:
  HookHarness() : pool_(2) {}

  // Writes an executable /bin/sh script; returns its path.
  std::string script(const std::string& name, const std::string& body) {
    std::string path = dir_.write(name, "#!/bin/sh\n" + body + "\n");
    ::chmod(path.c_str(), 0755);
    return path;
  }
  const std::string& dir() const { return dir_.path(); }

  void configure(const std::string& body) {
    std::istringstream in("[filters.hook]\n" + body);
    doc_ = toml::parse(in, dir_.path() + "/mxgate.toml");
    TableReader root(doc_, "");
    TableReader filters = root.getTable("filters");
    TableReader hook = filters.getTable("hook");
    FilterDeps deps;
    deps.workers = &pool_;
    filter_ = hookFilterFactory().create(hook, deps);
    hook.finish();
    symbols_ = SymbolTable();
    for (const SymbolSpec& s : hookFilterFactory().spec().symbols)
      symbols_.declare(s.name, {s.default_weight, s.description, "hook"});
  }
  // A command list for TOML: ["path", "arg", ...].
  static std::string list(const std::vector<std::string>& items) {
    std::string s = "[";
    for (const std::string& i : items) s += (s.size() > 1 ? ", \"" : "\"") + i + "\"";
    return s + "]";
  }
  void configureScript(const std::string& body, const std::string& extra = "") {
    configure("command = " + list({script("hook.sh", body), "%filepath"}) + "\n" + extra);
  }

  StageResult run(const std::string& message = kMessage) {
    result_.clear();
    session_.client_ip = asio::ip::make_address("192.0.2.7");
    session_.helo = "client.example";
    envelope_.mail_from = sender_;
    envelope_.rcpts = {{"u1@example.test", "", ""}, {"u2@example.test", "", ""}};
    FilterContext ctx(session_, envelope_, symbols_, result_);
    ctx.setFilterName("hook");
    ctx.setMessage(message);
    return testing::runCheck(*filter_, Stage::kData, ctx);
  }
  // The exception the check throws (the pipeline applies the failure mode).
  std::string failure(const std::string& message = kMessage) {
    try {
      run(message);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "<no failure>";
  }

  const ScanResult& result() const { return result_; }
  std::string detail(std::string_view symbol) const {
    for (const auto& h : result_.hits())
      if (h.name == symbol) return h.detail;
    return "<none>";
  }
  std::string sender_ = "sender@origin.example";

 private:
  testing::TempDir dir_{"hook"};
  WorkerPool pool_;
  toml::value doc_;
  std::unique_ptr<Filter> filter_;
  SymbolTable symbols_;
  SessionInfo session_;
  Envelope envelope_;
  ScanResult result_;
};

std::string configError(HookHarness& h, const std::string& body) {
  try {
    h.configure(body);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(Hook, ExitZeroAccepts) {
  HookHarness h;
  h.configureScript("exit 0");
  StageResult r = h.run();
  EXPECT_EQ(r.kind, Kind::kContinue);
  EXPECT_TRUE(h.result().hits().empty());
  EXPECT_EQ(h.result().requiredAction(), Action::kAccept);
}

TEST(Hook, ExitOneRejectsWithTheFirstLineOfStdout) {
  HookHarness h;
  h.configureScript("printf 'Spam \\001detected\\tby check\\r\\nsecond line\\n'; exit 1");
  StageResult r = h.run();
  ASSERT_EQ(r.kind, Kind::kReject);
  EXPECT_EQ(r.reply.code, 550);
  EXPECT_EQ(r.reply.enhanced, "5.7.1");
  EXPECT_EQ(r.reply.text, "Spam detected by check");
  EXPECT_EQ(h.detail("HOOK_REJECT"), "Spam detected by check");
}

TEST(Hook, RejectWithoutOutputUsesTheConfiguredText) {
  HookHarness h;
  h.configureScript("exit 1", "reject_text = \"Not here\"\n");
  StageResult r = h.run();
  ASSERT_EQ(r.kind, Kind::kReject);
  EXPECT_EQ(r.reply.text, "Not here");
}

TEST(Hook, ExitTwoHolds) {
  HookHarness h;
  h.configureScript("echo suspicious; exit 2");
  StageResult r = h.run();
  EXPECT_EQ(r.kind, Kind::kContinue);
  EXPECT_EQ(h.result().requiredAction(), Action::kQuarantine);
  EXPECT_EQ(h.detail("HOOK_HOLD"), "suspicious");
}

TEST(Hook, ExTempfailDefers) {
  HookHarness h;
  h.configureScript("exit 75");
  StageResult r = h.run();
  ASSERT_EQ(r.kind, Kind::kTempfail);
  EXPECT_EQ(r.reply.code, 451);
  EXPECT_EQ(r.reply.enhanced, "4.3.0");
  EXPECT_EQ(r.reply.text, "Temporary local problem, try again later");
}

TEST(Hook, CustomCodeMap) {
  HookHarness h;
  h.configureScript("exit \"$(cat \"$1\" | wc -l | tr -d ' ')\"",
                    "accept_codes = [4]\nreject_codes = [3]\nhold_codes = []\n"
                    "tempfail_codes = [0]\n");
  EXPECT_EQ(h.run("a\r\nb\r\nc\r\n").kind, Kind::kReject);
  EXPECT_EQ(h.run("a\r\nb\r\nc\r\nd\r\n").kind, Kind::kContinue);
  EXPECT_EQ(h.run("").kind, Kind::kTempfail);
  EXPECT_NE(h.failure("a\r\nb\r\n").find("unexpected status 2"), std::string::npos);
}

TEST(Hook, UnknownStatusIsAFailure) {
  HookHarness h;
  h.configureScript("echo oops >&2; exit 3");
  std::string f = h.failure();
  EXPECT_NE(f.find("unexpected status 3"), std::string::npos) << f;
  EXPECT_NE(f.find("stderr: oops"), std::string::npos) << f;
}

TEST(Hook, CrashIsAFailure) {
  HookHarness h;
  h.configureScript("kill -9 $$");
  EXPECT_NE(h.failure().find("killed by signal 9"), std::string::npos) << h.failure();
}

TEST(Hook, TimeoutKillsTheProcessGroup) {
  HookHarness h;
  std::string pidfile = h.dir() + "/child.pid";
  // Ignores SIGTERM and leaves a background child: both must be killed.
  h.configureScript("trap '' TERM\nsleep 30 &\necho $! > " + pidfile + "\nwait\nsleep 30",
                    "command_timeout = \"300ms\"\nkill_grace = \"200ms\"\n");
  auto started = Clock::now();
  std::string f = h.failure();
  auto spent = Clock::now() - started;
  EXPECT_NE(f.find("timed out after 300ms"), std::string::npos) << f;
  EXPECT_GE(spent, std::chrono::milliseconds(450));
  EXPECT_LT(spent, std::chrono::seconds(5));
  pid_t child = std::stoi(readFile(pidfile));
  // The orphaned child is reaped by init (whenever it gets to it): a zombie
  // counts as gone. Bounded wait, since the SIGKILL is delivered asynchronously.
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    std::string stat = readFile("/proc/" + std::to_string(child) + "/stat");
    size_t paren = stat.rfind(')');
    gone = stat.empty() ||
           (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z');
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "background child " << child << " survived the timeout";
}

TEST(Hook, QuickExitIsNotDelayedByThePollStep) {
  HookHarness h;
  h.configureScript("exit 0");
  auto started = Clock::now();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(3));
}

TEST(Hook, SpawnFailureIsAFailure) {
  HookHarness h;
  h.configureScript("exit 0");
  fs::remove(h.dir() + "/hook.sh");
  EXPECT_NE(h.failure().find("cannot run"), std::string::npos) << h.failure();
}

TEST(Hook, ArgumentsEnvironmentAndTheMessageFile) {
  HookHarness h;
  std::string out = h.dir() + "/out";
  std::string path = h.script(
      "args.sh",
      "for a in \"$@\"; do echo \"arg:$a\"; done > " + out + "\n" +
          "echo \"env:$MXGATE_SENDER|$MXGATE_RECIPIENTS|$MXGATE_CLIENT_IP|$MXGATE_HELO\" >> " +
          out + "\n" + "echo \"mode:$(stat -c %a \"$1\")\" >> " + out + "\n" +
          "echo \"same:$([ \"$1\" = \"$MXGATE_FILE\" ] && echo yes)\" >> " + out + "\n" +
          "cp \"$1\" " + out + ".msg\n");
  h.configure("command = " +
              HookHarness::list({path, "%filepath", "--from=%sender", "%recipients",
                                 "to=%recipients", "%client_ip", "%helo", "100%%"}) +
              "\ntemp_dir = \".\"\n");
  h.sender_ = "odd%filepath@origin.example";
  ASSERT_EQ(h.run().kind, Kind::kContinue);
  std::string text = readFile(out);
  std::istringstream lines(text);
  std::string first;
  std::getline(lines, first);
  ASSERT_EQ(first.rfind("arg:" + h.dir() + "/mxgate-hook.", 0), 0u) << text;
  std::string file = first.substr(4);
  std::string rest((std::istreambuf_iterator<char>(lines)), std::istreambuf_iterator<char>());
  EXPECT_EQ(rest,
            "arg:--from=odd%filepath@origin.example\n"
            "arg:u1@example.test\n"
            "arg:u2@example.test\n"
            "arg:to=u1@example.test u2@example.test\n"
            "arg:192.0.2.7\n"
            "arg:client.example\n"
            "arg:100%\n"
            "env:odd%filepath@origin.example|u1@example.test u2@example.test|192.0.2.7|"
            "client.example\n"
            "mode:600\n"
            "same:yes\n");
  EXPECT_EQ(readFile(out + ".msg"), kMessage);
  EXPECT_FALSE(fs::exists(file)) << "the temporary file was left behind";
}

TEST(Hook, LargeOutputDoesNotBlockTheProgram) {
  HookHarness h;
  h.configureScript("echo first; head -c 2000000 /dev/zero | tr '\\0' x; echo; exit 1",
                    "command_timeout = \"5s\"\n");
  StageResult r = h.run();
  ASSERT_EQ(r.kind, Kind::kReject);
  EXPECT_EQ(r.reply.text, "first");
}

TEST(Hook, NoCommandDoesNothing) {
  HookHarness h;
  h.configure("");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
}

TEST(Hook, ConfigErrors) {
  HookHarness h;
  std::string ok = h.script("ok.sh", "exit 0");
  std::string plain = h.dir() + "/plain.txt";
  std::ofstream(plain) << "x";
  struct Case {
    std::string body;
    std::string error;
  } cases[] = {
      {"command = " + HookHarness::list({ok, "%file"}), "unknown placeholder \"%file\""},
      {"command = " + HookHarness::list({ok, "50%"}), "unknown placeholder \"%\""},
      {"command = " + HookHarness::list({"%filepath"}), "the first element must be the program"},
      {"command = " + HookHarness::list({plain}), "is not an executable file"},
      {"command = " + HookHarness::list({"missing.sh"}), "missing.sh is not an executable file"},
      {"reject_codes = [2]", "exit status 2 is already mapped"},
      {"hold_codes = [256]", "from 0 to 255"},
      {"hold_codes = 2", "must be an array"},
      {"command_timeout = \"29s\"\nkill_grace = \"1s\"", "must be below the filter's timeout"},
      {"timeout = \"5s\"", "must be below the filter's timeout (5000ms)"},
      {"reject_text = \"\\u0001\"", "hook.reject_text: must not be empty"},
      {"comand = []", "hook.comand: unknown setting"},
  };
  for (const Case& c : cases) {
    std::string e = configError(h, c.body);
    EXPECT_NE(e.find(c.error), std::string::npos) << c.body << "\n -> " << e;
    EXPECT_NE(e.find("mxgate.toml:"), std::string::npos) << e;
  }
  EXPECT_EQ(configError(h, "command = " + HookHarness::list({ok}) +
                               "\ntimeout = \"5s\"\ncommand_timeout = \"2s\""),
            "<no error>");
}

TEST(HookRunner, ParseAndExpand) {
  std::vector<HookArg> cmd(3);
  std::string error;
  ASSERT_TRUE(parseHookArg("/bin/x", &cmd[0], &error));
  ASSERT_TRUE(parseHookArg("%sender:%helo%%", &cmd[1], &error));
  ASSERT_TRUE(parseHookArg("", &cmd[2], &error));
  HookValues v;
  v.sender = "%helo";
  v.helo = "h";
  EXPECT_EQ(expandHookCommand(cmd, v), (std::vector<std::string>{"/bin/x", "%helo:h%", ""}));
  HookArg bad;
  EXPECT_FALSE(parseHookArg("%queue_id", &bad, &error));
}

TEST(HookRunner, SanitizeReplyText) {
  EXPECT_EQ(sanitizeReplyText("  a\tb\r\x01 c  "), "a b c");
  EXPECT_EQ(sanitizeReplyText("caf\xc3\xa9"), "caf");
  EXPECT_EQ(sanitizeReplyText(std::string(500, 'x')).size(), 200u);
}

}  // namespace
}  // namespace mxgate
