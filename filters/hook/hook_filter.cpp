#include "filters/hook/hook_filter.h"

#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "filters/hook/hook_runner.h"
#include "gateway/config/table_reader.h"
#include "gateway/util/ip_set.h"
#include "gateway/util/worker_pool.h"

namespace mxgate {
namespace {

using std::chrono::milliseconds;

enum class Verdict { kAccept, kReject, kHold, kTempfail };

struct HookSettings {
  std::vector<HookArg> command;
  std::string temp_dir;
  milliseconds command_timeout{std::chrono::seconds(20)};
  milliseconds kill_grace{std::chrono::seconds(2)};
  std::map<int, Verdict> codes;
  std::string reject_text = "Message rejected by local policy";
  std::string tempfail_text = "Temporary local problem, try again later";
  std::string path_env = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
};

class HookFilter final : public Filter {
 public:
  HookFilter(std::shared_ptr<const HookSettings> settings, WorkerPool* workers)
      : settings_(std::move(settings)), workers_(workers) {}

  asio::awaitable<StageResult> check(Stage, FilterContext& ctx) override {
    if (settings_->command.empty()) co_return StageResult::next();  // no command: off
    if (workers_ == nullptr) throw std::runtime_error("no worker pool to run the hook on");
    // The job owns copies of everything: if the pipeline's timeout cancels
    // this check, the job still finishes (and kills the program) on its own.
    auto job = std::make_shared<HookJob>();
    job->command = settings_->command;
    job->values.sender = ctx.envelope().mail_from;
    for (const Recipient& r : ctx.envelope().rcpts) job->values.recipients.push_back(r.address);
    job->values.client_ip = canonicalAddress(ctx.session().client_ip).to_string();
    job->values.helo = ctx.session().helo;
    job->message.assign(ctx.message());
    job->temp_dir = settings_->temp_dir;
    job->timeout = settings_->command_timeout;
    job->kill_grace = settings_->kill_grace;
    job->path_env = settings_->path_env;

    // Passed as an lvalue on purpose: g++ 12 destroys a lambda temporary
    // handed by value to a coroutine inside co_await twice, so its captured
    // shared_ptr would be released twice (seen under AddressSanitizer).
    auto work = [job] { return runHook(*job); };
    HookExit r = co_await workers_->run(work);
    switch (r.kind) {
      case HookExit::Kind::kTimedOut:
        throw std::runtime_error(fmt::format("hook timed out after {}ms and was killed",
                                             settings_->command_timeout.count()));
      case HookExit::Kind::kSignaled:
        throw std::runtime_error(fmt::format("hook killed by signal {}{}", r.code, stderrNote(r)));
      case HookExit::Kind::kExited:
        break;
    }
    auto it = settings_->codes.find(r.code);
    if (it == settings_->codes.end())
      throw std::runtime_error(
          fmt::format("hook exited with unexpected status {}{}", r.code, stderrNote(r)));
    spdlog::debug("session {}: hook exited {} after {}ms{}", ctx.session().id, r.code,
                  r.elapsed.count(), r.first_line.empty() ? "" : ": " + r.first_line);
    switch (it->second) {
      case Verdict::kAccept:
        co_return StageResult::next();
      case Verdict::kReject:
        ctx.addSymbol("HOOK_REJECT", r.first_line);
        co_return StageResult::reject(550, "5.7.1",
                                      r.first_line.empty() ? settings_->reject_text : r.first_line);
      case Verdict::kHold:
        ctx.addSymbol("HOOK_HOLD", r.first_line);
        ctx.requireAction(Action::kQuarantine);
        co_return StageResult::next();
      case Verdict::kTempfail:
        co_return StageResult::tempfail(
            451, "4.3.0", r.first_line.empty() ? settings_->tempfail_text : r.first_line);
    }
    co_return StageResult::next();
  }

 private:
  static std::string stderrNote(const HookExit& r) {
    return r.stderr_head.empty() ? "" : " (stderr: " + r.stderr_head + ")";
  }

  const std::shared_ptr<const HookSettings> settings_;
  WorkerPool* const workers_;
};

FilterSpec hookSpec() {
  FilterSpec spec;
  spec.name = "hook";
  spec.stages = {Stage::kData};
  spec.symbols = {
      {"HOOK_REJECT", 0, "the hook program rejected the message"},
      {"HOOK_HOLD", 0, "the hook program asked to hold (quarantine) the message"},
      {"HOOK_ERROR", 0, "the hook program failed, timed out or gave an unknown status"},
  };
  // Longer than command_timeout + kill_grace, so the hook's own deadline
  // (which also kills the program) normally ends a slow run.
  spec.timeout = std::chrono::seconds(30);
  spec.fail_mode = FailMode::kTempfail;
  spec.fail_symbol = "HOOK_ERROR";
  spec.content_check = true;
  return spec;
}

std::string resolve(const TableReader& config, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_relative() && !config.file().empty())
    p = std::filesystem::absolute(std::filesystem::path(config.file()).parent_path() / p);
  std::string out = p.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

void readCodes(TableReader& config, const char* key, std::vector<int> def, Verdict verdict,
               std::map<int, Verdict>& codes) {
  std::vector<int> list = std::move(def);
  const toml::value& v = config.raw(key);
  if (!v.is_uninitialized()) {
    if (!v.is_array()) config.fail(key, "must be an array of exit statuses (0-255)");
    list.clear();
    for (const toml::value& item : v.as_array()) {
      if (!item.is_integer() || item.as_integer() < 0 || item.as_integer() > 255)
        config.fail(key, "every element must be an exit status from 0 to 255");
      list.push_back(static_cast<int>(item.as_integer()));
    }
  }
  for (int code : list) {
    if (!codes.emplace(code, verdict).second)
      config.fail(key,
                  fmt::format("exit status {} is already mapped by another *_codes key", code));
  }
}

std::unique_ptr<Filter> createHook(TableReader& config, const FilterDeps& deps) {
  auto s = std::make_shared<HookSettings>();
  std::vector<std::string> command = config.getStringList("command", {});
  if (!command.empty()) {
    std::string error;
    if (command[0].empty() || command[0].find('%') != std::string::npos)
      config.fail("command", "the first element must be the program's path, without placeholders");
    command[0] = resolve(config, command[0]);
    if (::access(command[0].c_str(), X_OK) != 0)
      config.fail("command", command[0] + " is not an executable file");
    for (const std::string& arg : command) {
      HookArg parsed;
      if (!parseHookArg(arg, &parsed, &error)) config.fail("command", error);
      s->command.push_back(std::move(parsed));
    }
  }
  s->temp_dir = config.getString("temp_dir", "/tmp");
  if (s->temp_dir.empty()) config.fail("temp_dir", "must not be empty");
  s->temp_dir = resolve(config, s->temp_dir);
  s->command_timeout = config.getDuration("command_timeout", s->command_timeout);
  if (s->command_timeout.count() <= 0) config.fail("command_timeout", "must be positive");
  s->kill_grace = config.getDuration("kill_grace", s->kill_grace);
  // The pipeline read `timeout` already; reading it again only compares.
  milliseconds filter_timeout = config.getDuration("timeout", hookSpec().timeout);
  if (s->command_timeout + s->kill_grace >= filter_timeout)
    config.fail("command_timeout",
                fmt::format("command_timeout + kill_grace ({}ms) must be below the filter's "
                            "timeout ({}ms)",
                            (s->command_timeout + s->kill_grace).count(), filter_timeout.count()));
  readCodes(config, "accept_codes", {0}, Verdict::kAccept, s->codes);
  readCodes(config, "reject_codes", {1}, Verdict::kReject, s->codes);
  readCodes(config, "hold_codes", {2}, Verdict::kHold, s->codes);
  readCodes(config, "tempfail_codes", {75}, Verdict::kTempfail, s->codes);  // EX_TEMPFAIL
  s->reject_text = sanitizeReplyText(config.getString("reject_text", s->reject_text));
  s->tempfail_text = sanitizeReplyText(config.getString("tempfail_text", s->tempfail_text));
  if (s->reject_text.empty()) config.fail("reject_text", "must not be empty");
  if (s->tempfail_text.empty()) config.fail("tempfail_text", "must not be empty");
  s->path_env = config.getString("path", s->path_env);
  return std::make_unique<HookFilter>(std::move(s), deps.workers);
}

}  // namespace

FilterFactory hookFilterFactory() {
  return {hookSpec, createHook};
}

}  // namespace mxgate
