// Runs the declared filters at each SMTP stage.
//
// Built once per configuration load. Order within a stage follows the
// registry, adjusted so every filter runs after the filters it names in
// `after`. At build time a dependency cycle, a dependency on an unknown
// filter, or a dependency on a filter that first runs at a later stage
// refuses the configuration with a message naming both filters.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "gateway/pipeline/filter.h"

namespace mxgate {

class TableReader;

struct FilterTiming {
  const char* filter;  // points into the pipeline's specs; valid while it lives
  std::chrono::microseconds spent;
};

class Pipeline {
 public:
  struct Entry {
    FilterSpec spec;
    std::unique_ptr<Filter> filter;
  };

  // Reads [filters.<name>] for every registered filter (keys enabled,
  // timeout, on_error, then the filter's own), declares each enabled filter's
  // symbols in symbols, and orders the stages. Throws ConfigError.
  void build(TableReader& filters, const std::vector<FilterFactory>& registry, SymbolTable& symbols,
             const FilterDeps& deps);

  // Runs every filter of the stage in order until one rejects or tempfails.
  // A filter that throws or overruns its timeout follows its FailMode: skip
  // adds its fail symbol and continues; tempfail answers 451 4.3.0 (421 and
  // disconnect at connect). Never returns kContinue for a failed tempfail filter.
  asio::awaitable<StageResult> run(Stage stage, FilterContext& ctx,
                                   std::vector<FilterTiming>* timings) const;

  void sessionEnded(const SessionInfo& session, const SessionStats& stats) const;

  const std::vector<Entry>& entries() const { return entries_; }
  // Filters in run order for a stage (indexes into entries()).
  const std::vector<size_t>& order(Stage s) const { return order_[static_cast<int>(s)]; }

 private:
  void orderStages(const std::string& file, uint32_t line);

  std::vector<Entry> entries_;
  std::vector<size_t> order_[kStageCount];
};

}  // namespace mxgate
