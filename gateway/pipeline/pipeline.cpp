#include "gateway/pipeline/pipeline.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "gateway/config/table_reader.h"
#include "gateway/pipeline/symbol_table.h"

namespace mxgate {
namespace {

Stage firstStage(const FilterSpec& s) {
  return *std::min_element(s.stages.begin(), s.stages.end());
}

bool runsAt(const FilterSpec& s, Stage st) {
  return std::find(s.stages.begin(), s.stages.end(), st) != s.stages.end();
}

// A filter's answer, or why it has none.
struct CheckOutcome {
  std::optional<StageResult> result;
  std::string failure;
};

// Runs check() and turns an exception into a value. The timeout race below
// (awaitable operator ||) only ends early when one side completes without an
// exception; a throwing check would otherwise wait out the whole timeout and
// be reported as a timeout.
asio::awaitable<CheckOutcome> guardedCheck(Filter& filter, Stage stage, FilterContext& ctx) {
  try {
    StageResult r = co_await filter.check(stage, ctx);
    co_return CheckOutcome{std::move(r), {}};
  } catch (const std::exception& ex) {
    co_return CheckOutcome{std::nullopt, ex.what()};
  } catch (...) {
    co_return CheckOutcome{std::nullopt, "unknown exception"};
  }
}

}  // namespace

void Pipeline::build(TableReader& filters, const std::vector<FilterFactory>& registry,
                     SymbolTable& symbols, const FilterDeps& deps) {
  std::map<std::string, bool> known;  // every registered filter, enabled or not
  for (const FilterFactory& factory : registry) {
    FilterSpec spec = factory.spec();
    known[spec.name] = false;
    TableReader cfg = filters.getTable(spec.name);
    if (!cfg.getBool("enabled", spec.enabled_by_default)) {
      // Read nothing else: a disabled filter's settings are not validated,
      // so an admin can switch one off without deleting its section.
      for (const auto& k : cfg.keys()) (void)k;
      continue;
    }
    known[spec.name] = true;
    spec.timeout = cfg.getDuration("timeout", spec.timeout);
    if (spec.timeout.count() <= 0) cfg.fail("timeout", "must be positive");
    std::string on_error =
        cfg.getString("on_error", spec.fail_mode == FailMode::kTempfail ? "tempfail" : "skip");
    if (on_error == "tempfail") {
      spec.fail_mode = FailMode::kTempfail;
    } else if (on_error == "skip") {
      spec.fail_mode = FailMode::kSkip;
    } else {
      cfg.fail("on_error", "must be \"tempfail\" or \"skip\", not \"" + on_error + "\"");
    }
    for (const SymbolSpec& sym : spec.symbols) {
      if (!symbols.declare(sym.name, SymbolInfo{sym.default_weight, sym.description, spec.name}))
        throw ConfigError(cfg.file(), cfg.line(),
                          "symbol " + sym.name + " of filter " + spec.name +
                              " is already declared by filter " + symbols.find(sym.name)->filter);
    }
    if (!spec.fail_symbol.empty() && symbols.find(spec.fail_symbol) == nullptr)
      symbols.declare(spec.fail_symbol, SymbolInfo{0, spec.name + " failed", spec.name});
    std::unique_ptr<Filter> filter = factory.create(cfg, deps);
    cfg.finish();
    entries_.push_back(Entry{std::move(spec), std::move(filter)});
  }
  // A [filters.X] section for a filter that does not exist is a typo.
  for (const auto& name : filters.keys()) {
    if (!known.count(name)) filters.fail(name, "no such filter");
  }
  // Dependencies: known, not later-stage, no cycles.
  for (const Entry& e : entries_) {
    for (const std::string& dep : e.spec.after) {
      auto it = known.find(dep);
      if (it == known.end())
        throw ConfigError(filters.file(), filters.line(),
                          "filter " + e.spec.name + " depends on unknown filter " + dep);
      if (!it->second) continue;  // ordering only; a disabled dependency imposes none
      const Entry& d = *std::find_if(entries_.begin(), entries_.end(),
                                     [&](const Entry& x) { return x.spec.name == dep; });
      if (firstStage(d.spec) > firstStage(e.spec))
        throw ConfigError(filters.file(), filters.line(),
                          "filter " + e.spec.name + " first runs at stage " +
                              stageName(firstStage(e.spec)) + " but depends on filter " + dep +
                              ", which first runs at the later stage " +
                              stageName(firstStage(d.spec)));
    }
  }
  orderStages(filters.file(), filters.line());
}

void Pipeline::orderStages(const std::string& file, uint32_t line) {
  // Depth-first topological order over all entries, visiting in registry
  // order so independent filters keep their declared order.
  std::vector<int> mark(entries_.size(), 0);  // 0 new, 1 on stack, 2 done
  std::vector<size_t> sorted;
  std::vector<std::string> stack;
  std::function<void(size_t)> visit = [&](size_t i) {
    if (mark[i] == 2) return;
    if (mark[i] == 1) {
      std::string cycle;
      for (const auto& n : stack) cycle += n + " -> ";
      throw ConfigError(file, line, "filter dependency cycle: " + cycle + entries_[i].spec.name);
    }
    mark[i] = 1;
    stack.push_back(entries_[i].spec.name);
    for (const std::string& dep : entries_[i].spec.after) {
      for (size_t j = 0; j < entries_.size(); ++j)
        if (entries_[j].spec.name == dep) visit(j);
    }
    stack.pop_back();
    mark[i] = 2;
    sorted.push_back(i);
  };
  for (size_t i = 0; i < entries_.size(); ++i) visit(i);
  for (int s = 0; s < kStageCount; ++s) {
    order_[s].clear();
    for (size_t i : sorted)
      if (runsAt(entries_[i].spec, static_cast<Stage>(s))) order_[s].push_back(i);
  }
}

asio::awaitable<StageResult> Pipeline::run(Stage stage, FilterContext& ctx,
                                           std::vector<FilterTiming>* timings) const {
  using namespace asio::experimental::awaitable_operators;
  auto executor = co_await asio::this_coro::executor;
  for (size_t i : order_[static_cast<int>(stage)]) {
    const Entry& e = entries_[i];
    if (e.spec.content_check && ctx.contentSkipped()) continue;
    ctx.setFilterName(e.spec.name);
    auto started = std::chrono::steady_clock::now();
    std::optional<StageResult> result;
    std::string failure;
    try {
      asio::steady_timer timer(executor, e.spec.timeout);
      auto r =
          co_await (guardedCheck(*e.filter, stage, ctx) || timer.async_wait(asio::use_awaitable));
      if (r.index() == 0) {
        CheckOutcome outcome = std::get<0>(std::move(r));
        result = std::move(outcome.result);
        failure = std::move(outcome.failure);
        if (!result && failure.empty()) failure = "failed without a message";
      } else {
        failure = "timed out after " + std::to_string(e.spec.timeout.count()) + "ms";
      }
    } catch (const std::exception& ex) {
      failure = ex.what();
    } catch (...) {
      failure = "unknown exception";
    }
    auto spent = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started);
    if (timings) timings->push_back(FilterTiming{e.spec.name.c_str(), spent});
    if (!failure.empty()) {
      spdlog::error("session {}: filter {} failed at stage {}: {} (on_error={})", ctx.session().id,
                    e.spec.name, stageName(stage), failure,
                    e.spec.fail_mode == FailMode::kSkip ? "skip" : "tempfail");
      if (e.spec.fail_mode == FailMode::kSkip) {
        if (!e.spec.fail_symbol.empty()) ctx.addSymbol(e.spec.fail_symbol, failure);
        continue;
      }
      ctx.setFilterName({});
      if (stage == Stage::kConnect)
        co_return StageResult::tempfail(421, "4.3.0", "Service temporarily unavailable", true);
      co_return StageResult::tempfail(451, "4.3.0", "Temporary local problem, try again later");
    }
    if (result->kind != StageResult::Kind::kContinue) {
      ctx.setFilterName({});
      co_return std::move(*result);
    }
  }
  ctx.setFilterName({});
  co_return StageResult::next();
}

void Pipeline::sessionEnded(const SessionInfo& session, const SessionStats& stats) const {
  for (const Entry& e : entries_) {
    try {
      e.filter->sessionEnded(session, stats);
    } catch (const std::exception& ex) {
      spdlog::error("filter {} failed at session end: {}", e.spec.name, ex.what());
    }
  }
}

}  // namespace mxgate
