// DMARC (RFC 7489) at end of DATA: the From domain's policy, applied from the
// SPF and DKIM outcomes earlier filters recorded in AuthFacts. Fills
// AuthFacts::dmarc (for Authentication-Results), adds a DMARC_* symbol,
// rejects (550 5.7.1) or requires quarantine as the policy asks, and stores
// every evaluation for aggregate reports (evaluation_record.h).
// See README.md for the settings and decisions.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "gateway/pipeline/filter.h"

namespace mxgate {

FilterFactory dmarcFilterFactory();

// Seams for tests and benchmarks; empty members take the real thing.
struct DmarcHooks {
  std::function<std::chrono::system_clock::time_point()> clock;
  // pct sampling: a number in [0, 100); the message is in the sample when
  // it is below pct.
  std::function<uint32_t()> sample;
};

std::unique_ptr<Filter> makeDmarcFilter(TableReader& config, const FilterDeps& deps,
                                        DmarcHooks hooks = {});

}  // namespace mxgate
