#include "gateway/pipeline/pipeline.h"

#include <chrono>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "gateway/config/table_reader.h"
#include "gateway/pipeline/symbol_table.h"

namespace mxgate {
namespace {

using namespace std::chrono_literals;
using Kind = StageResult::Kind;
using Log = std::vector<std::string>;

enum class Behaviour { kContinue, kReject, kThrow, kHang, kSkipContent, kAddSymbol };

// Logs "name@stage" on every check, then does what it was told.
class FakeFilter : public Filter {
 public:
  FakeFilter(std::string name, Behaviour behaviour, std::string symbol, Log* log)
      : name_(std::move(name)), behaviour_(behaviour), symbol_(std::move(symbol)), log_(log) {}

  asio::awaitable<StageResult> check(Stage stage, FilterContext& ctx) override {
    log_->push_back(name_ + "@" + stageName(stage));
    switch (behaviour_) {
      case Behaviour::kContinue:
        break;
      case Behaviour::kReject:
        co_return StageResult::reject(550, "5.7.1", name_ + " says no");
      case Behaviour::kThrow:
        throw std::runtime_error(name_ + " broke");
      case Behaviour::kHang: {
        asio::steady_timer forever(co_await asio::this_coro::executor, std::chrono::hours(24));
        co_await forever.async_wait(asio::use_awaitable);
        log_->push_back(name_ + " woke up");
        break;
      }
      case Behaviour::kSkipContent:
        ctx.skipContent();
        break;
      case Behaviour::kAddSymbol:
        ctx.addSymbol(symbol_, "hit by " + name_);
        break;
    }
    co_return StageResult::next();
  }

  void sessionEnded(const SessionInfo&, const SessionStats&) override {
    log_->push_back(name_ + " ended");
  }

 private:
  std::string name_;
  Behaviour behaviour_;
  std::string symbol_;
  Log* log_;
};

struct FakeOptions {
  std::vector<Stage> stages = {Stage::kMail};
  std::vector<std::string> after = {};
  std::vector<SymbolSpec> symbols = {};
  Behaviour behaviour = Behaviour::kContinue;
  FailMode fail_mode = FailMode::kTempfail;
  std::string fail_symbol = {};
  bool content_check = false;
};

// A registry entry for a fake filter. Its factory accepts one own key,
// "level", and counts the instances it makes.
FilterFactory fake(const std::string& name, FakeOptions o, Log* log, int* created = nullptr) {
  FilterSpec spec;
  spec.name = name;
  spec.stages = o.stages;
  spec.after = o.after;
  spec.symbols = o.symbols;
  spec.fail_mode = o.fail_mode;
  spec.fail_symbol = o.fail_symbol;
  spec.content_check = o.content_check;
  const std::string symbol = o.symbols.empty() ? "" : o.symbols[0].name;
  const Behaviour behaviour = o.behaviour;
  return {[spec] { return spec; },
          [name, behaviour, symbol, log, created](TableReader& cfg, const FilterDeps&) {
            cfg.getInt("level", 0, 0, 10);
            if (created) ++*created;
            return std::make_unique<FakeFilter>(name, behaviour, symbol, log);
          }};
}

// Builds a pipeline from TOML text, as loadRuntime does with [filters].
struct Built {
  toml::value doc;
  SymbolTable symbols;
  Pipeline pipeline;
};

std::unique_ptr<Built> build(const std::string& toml_text,
                             const std::vector<FilterFactory>& registry) {
  auto b = std::make_unique<Built>();
  std::istringstream in(toml_text);
  b->doc = toml::parse(in, "test.toml");
  TableReader root(b->doc, "");
  TableReader filters = root.getTable("filters");
  b->pipeline.build(filters, registry, b->symbols, FilterDeps{});
  return b;
}

// The ConfigError build() throws, or nullopt.
std::optional<ConfigError> buildError(const std::string& toml_text,
                                      const std::vector<FilterFactory>& registry) {
  try {
    build(toml_text, registry);
  } catch (const ConfigError& e) {
    return e;
  }
  return std::nullopt;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// One message's context, and Pipeline::run driven to completion on a private loop.
class StageRunner {
 public:
  explicit StageRunner(const Built& b) : built_(b), ctx_(session_, envelope_, b.symbols, result_) {
    session_.client_ip = asio::ip::make_address("192.0.2.1");
  }

  StageResult stage(Stage s) {
    asio::io_context io;
    std::optional<StageResult> out;
    std::exception_ptr error;
    auto started = std::chrono::steady_clock::now();
    asio::co_spawn(io, built_.pipeline.run(s, ctx_, &timings_),
                   [&](std::exception_ptr e, StageResult r) {
                     error = e;
                     out = std::move(r);
                   });
    io.run();
    elapsed_ = std::chrono::steady_clock::now() - started;
    if (error) std::rethrow_exception(error);
    return *out;
  }

  FilterContext& ctx() { return ctx_; }
  const ScanResult& result() const { return result_; }
  const std::vector<FilterTiming>& timings() const { return timings_; }
  std::chrono::steady_clock::duration elapsed() const { return elapsed_; }
  const SymbolHit* hit(std::string_view name) const {
    for (const auto& h : result_.hits())
      if (h.name == name) return &h;
    return nullptr;
  }

 private:
  const Built& built_;
  SessionInfo session_;
  Envelope envelope_;
  ScanResult result_;
  FilterContext ctx_;
  std::vector<FilterTiming> timings_;
  std::chrono::steady_clock::duration elapsed_{};
};

TEST(Pipeline, OrdersByAfterAcrossRegistryOrder) {
  Log log;
  std::vector<FilterFactory> registry{
      fake("a", {.after = {"c"}}, &log),
      fake("b", {}, &log),
      fake("c", {.stages = {Stage::kConnect, Stage::kMail}}, &log),
      fake("d", {.stages = {Stage::kData}, .after = {"b"}}, &log),
  };
  auto b = build("", registry);
  StageRunner run(*b);
  EXPECT_EQ(run.stage(Stage::kMail).kind, Kind::kContinue);
  EXPECT_EQ(log, (Log{"c@mail", "a@mail", "b@mail"}));
  log.clear();
  run.stage(Stage::kConnect);
  EXPECT_EQ(log, (Log{"c@connect"}));
  log.clear();
  run.stage(Stage::kRcpt);
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(b->pipeline.order(Stage::kData).size(), 1u);
}

TEST(Pipeline, IndependentFiltersKeepRegistryOrder) {
  Log log;
  std::vector<FilterFactory> registry{fake("z", {}, &log), fake("y", {}, &log),
                                      fake("x", {.after = {"z"}}, &log)};
  auto b = build("", registry);
  StageRunner(*b).stage(Stage::kMail);
  EXPECT_EQ(log, (Log{"z@mail", "y@mail", "x@mail"}));
}

TEST(Pipeline, DependencyCycleIsRefused) {
  Log log;
  auto e = buildError("", {fake("a", {.after = {"b"}}, &log), fake("b", {.after = {"c"}}, &log),
                           fake("c", {.after = {"a"}}, &log)});
  ASSERT_TRUE(e);
  EXPECT_TRUE(contains(e->message(), "cycle")) << e->what();
  EXPECT_TRUE(contains(e->message(), "a -> b -> c -> a")) << e->what();
  auto self = buildError("", {fake("a", {.after = {"a"}}, &log)});
  ASSERT_TRUE(self);
  EXPECT_TRUE(contains(self->message(), "cycle")) << self->what();
}

TEST(Pipeline, DependencyOnLaterStageFilterIsRefused) {
  Log log;
  auto e = buildError("[filters.early]\n",
                      {fake("early", {.stages = {Stage::kConnect}, .after = {"late"}}, &log),
                       fake("late", {.stages = {Stage::kRcpt, Stage::kData}}, &log)});
  ASSERT_TRUE(e);
  EXPECT_TRUE(contains(e->message(), "filter early first runs at stage connect")) << e->what();
  EXPECT_TRUE(contains(e->message(), "filter late, which first runs at the later stage rcpt"))
      << e->what();
  EXPECT_EQ(e->file(), "test.toml");
}

TEST(Pipeline, DependencyOnUnknownFilterIsRefused) {
  Log log;
  auto e = buildError("", {fake("a", {.after = {"ghost"}}, &log)});
  ASSERT_TRUE(e);
  EXPECT_TRUE(contains(e->message(), "filter a depends on unknown filter ghost")) << e->what();
}

TEST(Pipeline, DisabledDependencyImposesNoOrder) {
  Log log;
  auto b = build("[filters.b]\nenabled = false\n",
                 {fake("a", {.after = {"b"}}, &log), fake("b", {}, &log)});
  StageRunner(*b).stage(Stage::kMail);
  EXPECT_EQ(log, (Log{"a@mail"}));
}

TEST(Pipeline, SectionForUnknownFilterIsRefusedWithItsLine) {
  Log log;
  auto e = buildError("[filters.a]\nlevel = 1\n\n[filters.nosuch]\nx = 1\n", {fake("a", {}, &log)});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message(), "filters.nosuch: no such filter");
  EXPECT_EQ(e->file(), "test.toml");
  EXPECT_EQ(e->line(), 4u);
}

TEST(Pipeline, DisabledFilterIsNotBuiltRunOrValidated) {
  Log log;
  int created = 0;
  auto b = build("[filters.b]\nenabled = false\nbogus = 1\nlevel = \"not a number\"\n",
                 {fake("a", {}, &log), fake("b", {.symbols = {{"B_HIT", 1, ""}}}, &log, &created)});
  EXPECT_EQ(created, 0);
  ASSERT_EQ(b->pipeline.entries().size(), 1u);
  EXPECT_EQ(b->pipeline.entries()[0].spec.name, "a");
  EXPECT_EQ(b->symbols.find("B_HIT"), nullptr);
  StageRunner(*b).stage(Stage::kMail);
  EXPECT_EQ(log, (Log{"a@mail"}));
}

TEST(Pipeline, FilterOffByDefaultRunsOnlyWhenEnabled) {
  Log log;
  FilterFactory off = fake("b", {}, &log);
  off.spec = [inner = off.spec] {
    FilterSpec s = inner();
    s.enabled_by_default = false;
    return s;
  };
  auto b = build("", {fake("a", {}, &log), off});
  ASSERT_EQ(b->pipeline.entries().size(), 1u);
  EXPECT_EQ(b->pipeline.entries()[0].spec.name, "a");
  auto on = build("[filters.b]\nenabled = true\n", {fake("a", {}, &log), off});
  ASSERT_EQ(on->pipeline.entries().size(), 2u);
  EXPECT_EQ(on->pipeline.entries()[1].spec.name, "b");
}

TEST(Pipeline, EnabledFilterSettingsAreValidated) {
  Log log;
  EXPECT_NO_THROW(build("[filters.b]\nlevel = 3\n", {fake("b", {}, &log)}));
  auto e = buildError("[filters.b]\nlevel = 3\nbogus = 1\n", {fake("b", {}, &log)});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message(), "filters.b.bogus: unknown setting");
  EXPECT_EQ(e->line(), 3u);
  auto t = buildError("[filters.b]\nenabled = \"yes\"\n", {fake("b", {}, &log)});
  ASSERT_TRUE(t);
  EXPECT_EQ(t->line(), 2u);
}

TEST(Pipeline, TimeoutAndOnErrorOverrideTheSpec) {
  Log log;
  auto b = build("[filters.a]\ntimeout = \"250ms\"\non_error = \"skip\"\n",
                 {fake("a", {}, &log), fake("b", {.fail_mode = FailMode::kSkip}, &log)});
  ASSERT_EQ(b->pipeline.entries().size(), 2u);
  EXPECT_EQ(b->pipeline.entries()[0].spec.timeout, 250ms);
  EXPECT_EQ(b->pipeline.entries()[0].spec.fail_mode, FailMode::kSkip);
  EXPECT_EQ(b->pipeline.entries()[1].spec.timeout, 5000ms) << "spec default";
  EXPECT_EQ(b->pipeline.entries()[1].spec.fail_mode, FailMode::kSkip);
  auto b2 = build("[filters.b]\non_error = \"tempfail\"\ntimeout = 2\n", {fake("b", {}, &log)});
  EXPECT_EQ(b2->pipeline.entries()[0].spec.fail_mode, FailMode::kTempfail);
  EXPECT_EQ(b2->pipeline.entries()[0].spec.timeout, 2000ms);

  auto bad_mode = buildError("[filters.a]\n\non_error = \"ignore\"\n", {fake("a", {}, &log)});
  ASSERT_TRUE(bad_mode);
  EXPECT_EQ(bad_mode->line(), 3u);
  EXPECT_TRUE(contains(bad_mode->message(), "filters.a.on_error")) << bad_mode->what();
  auto zero = buildError("[filters.a]\ntimeout = \"0ms\"\n", {fake("a", {}, &log)});
  ASSERT_TRUE(zero);
  EXPECT_EQ(zero->line(), 2u);
  EXPECT_TRUE(contains(zero->message(), "must be positive")) << zero->what();
}

TEST(Pipeline, ThrowingSkipFilterAddsFailSymbolAndContinues) {
  Log log;
  std::vector<FilterFactory> registry{
      fake(
          "a",
          {.behaviour = Behaviour::kThrow, .fail_mode = FailMode::kSkip, .fail_symbol = "A_FAILED"},
          &log),
      fake("b", {}, &log)};
  auto b = build("[filters.a]\ntimeout = \"10s\"\n", registry);
  StageRunner run(*b);
  EXPECT_EQ(run.stage(Stage::kMail).kind, Kind::kContinue);
  EXPECT_EQ(log, (Log{"a@mail", "b@mail"}));
  const SymbolHit* hit = run.hit("A_FAILED");
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->filter, "a");
  EXPECT_EQ(hit->weight, 0);
  // The failure is handled when it happens, not when the timeout expires.
  EXPECT_EQ(hit->detail, "a broke");
  EXPECT_LT(run.elapsed(), 2s);
}

TEST(Pipeline, ThrowingTempfailFilterAnswers451) {
  Log log;
  std::vector<FilterFactory> registry{
      fake("a", {.stages = {Stage::kConnect, Stage::kMail}, .behaviour = Behaviour::kThrow}, &log),
      fake("b", {.stages = {Stage::kConnect, Stage::kMail}}, &log)};
  auto b = build("", registry);
  StageRunner run(*b);
  StageResult r = run.stage(Stage::kMail);
  EXPECT_EQ(r.kind, Kind::kTempfail);
  EXPECT_EQ(r.reply.code, 451);
  EXPECT_EQ(r.reply.enhanced, "4.3.0");
  EXPECT_FALSE(r.disconnect);
  EXPECT_EQ(log, (Log{"a@mail"})) << "filters after a failed tempfail filter do not run";
  EXPECT_LT(run.elapsed(), 2s);
  StageResult c = run.stage(Stage::kConnect);
  EXPECT_EQ(c.kind, Kind::kTempfail);
  EXPECT_EQ(c.reply.code, 421);
  EXPECT_EQ(c.reply.enhanced, "4.3.0");
  EXPECT_TRUE(c.disconnect);
}

TEST(Pipeline, HangingFilterIsTimedOutAndSkipped) {
  Log log;
  auto b = build("[filters.slow]\ntimeout = \"50ms\"\non_error = \"skip\"\n",
                 {fake("slow", {.behaviour = Behaviour::kHang, .fail_symbol = "SLOW_FAILED"}, &log),
                  fake("next", {}, &log)});
  StageRunner run(*b);
  EXPECT_EQ(run.stage(Stage::kMail).kind, Kind::kContinue);
  EXPECT_EQ(log, (Log{"slow@mail", "next@mail"}));
  const SymbolHit* hit = run.hit("SLOW_FAILED");
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->detail, "timed out after 50ms");
  EXPECT_GE(run.elapsed(), 50ms);
  EXPECT_LT(run.elapsed(), 5s);
  ASSERT_EQ(run.timings().size(), 2u);
  EXPECT_STREQ(run.timings()[0].filter, "slow");
  EXPECT_GE(run.timings()[0].spent, 50ms);
}

TEST(Pipeline, HangingTempfailFilterIsTimedOutWith451) {
  Log log;
  auto b = build("[filters.slow]\ntimeout = \"50ms\"\n",
                 {fake("slow", {.behaviour = Behaviour::kHang}, &log), fake("next", {}, &log)});
  StageRunner run(*b);
  StageResult r = run.stage(Stage::kMail);
  EXPECT_EQ(r.kind, Kind::kTempfail);
  EXPECT_EQ(r.reply.code, 451);
  EXPECT_EQ(r.reply.enhanced, "4.3.0");
  EXPECT_EQ(log, (Log{"slow@mail"}));
  EXPECT_LT(run.elapsed(), 5s);
}

TEST(Pipeline, RejectStopsTheStage) {
  Log log;
  auto b = build("", {fake("a", {.behaviour = Behaviour::kReject}, &log), fake("b", {}, &log)});
  StageRunner run(*b);
  StageResult r = run.stage(Stage::kMail);
  EXPECT_EQ(r.kind, Kind::kReject);
  EXPECT_EQ(r.reply.code, 550);
  EXPECT_EQ(r.reply.enhanced, "5.7.1");
  EXPECT_EQ(r.reply.text, "a says no");
  EXPECT_EQ(log, (Log{"a@mail"}));
}

TEST(Pipeline, ContentChecksSkippedWhenContextSaysSo) {
  Log log;
  std::vector<FilterFactory> registry{
      fake("allow", {.stages = {Stage::kData}, .behaviour = Behaviour::kSkipContent}, &log),
      fake("bayes", {.stages = {Stage::kData}, .content_check = true}, &log),
      fake("dkim", {.stages = {Stage::kData}}, &log)};
  auto b = build("", registry);
  StageRunner run(*b);
  run.stage(Stage::kData);
  EXPECT_EQ(log, (Log{"allow@data", "dkim@data"}));
  // Without the allow-list mark, content checks run.
  log.clear();
  auto b2 = build("", {fake("bayes", {.stages = {Stage::kData}, .content_check = true}, &log)});
  StageRunner(*b2).stage(Stage::kData);
  EXPECT_EQ(log, (Log{"bayes@data"}));
  // Marked before the stage starts (e.g. at connect): skipped too.
  log.clear();
  StageRunner pre(*b2);
  pre.ctx().skipContent();
  pre.stage(Stage::kData);
  EXPECT_TRUE(log.empty());
}

TEST(Pipeline, SymbolsAreDeclaredWithDefaultWeights) {
  Log log;
  auto b = build("", {fake("a",
                           {.symbols = {{"A_HIT", 2.5, "a hit"}, {"A_MISS", -1, "a miss"}},
                            .behaviour = Behaviour::kAddSymbol,
                            .fail_symbol = "A_FAILED"},
                           &log)});
  const SymbolInfo* hit = b->symbols.find("A_HIT");
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->weight, 2.5);
  EXPECT_EQ(hit->description, "a hit");
  EXPECT_EQ(hit->filter, "a");
  ASSERT_NE(b->symbols.find("A_MISS"), nullptr);
  EXPECT_EQ(b->symbols.find("A_MISS")->weight, -1);
  const SymbolInfo* failed = b->symbols.find("A_FAILED");
  ASSERT_NE(failed, nullptr) << "the fail symbol is declared too";
  EXPECT_EQ(failed->weight, 0);
  EXPECT_EQ(b->symbols.all().size(), 3u);
  // A symbol added at run time takes its configured weight.
  ASSERT_TRUE(b->symbols.setWeight("A_HIT", 4));
  StageRunner run(*b);
  run.stage(Stage::kMail);
  EXPECT_EQ(run.result().score(), 4);
  ASSERT_NE(run.hit("A_HIT"), nullptr);
  EXPECT_EQ(run.hit("A_HIT")->detail, "hit by a");
}

TEST(Pipeline, DuplicateSymbolAcrossFiltersIsRefused) {
  Log log;
  auto e = buildError("[filters.two]\n", {fake("one", {.symbols = {{"SAME_NAME", 1, ""}}}, &log),
                                          fake("two", {.symbols = {{"SAME_NAME", 2, ""}}}, &log)});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message(), "symbol SAME_NAME of filter two is already declared by filter one");
  EXPECT_EQ(e->line(), 1u);
}

TEST(Pipeline, SessionEndedReachesEveryEnabledFilter) {
  Log log;
  auto b = build("[filters.b]\nenabled = false\n",
                 {fake("a", {}, &log), fake("b", {}, &log), fake("c", {}, &log)});
  b->pipeline.sessionEnded(SessionInfo{}, SessionStats{});
  EXPECT_EQ(log, (Log{"a ended", "c ended"}));
}

}  // namespace
}  // namespace mxgate
