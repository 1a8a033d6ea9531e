// Connection abuse detection: clients that connect too often, or keep ending
// sessions without sending mail (or with failed logins), are blocked for a
// while with 421 at connect.
// See README.md for the settings.
//
// Blocks persist in the KvStore bucket "abuse_blocks", keyed by the canonical
// IP text (IPv4-mapped IPv6 written as IPv4), with the value
//   until=<unix seconds> created=<unix seconds> reason=<text to end>
// An entry whose until has passed is treated as absent.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/pipeline/filter.h"

namespace mxgate {

FilterFactory abuseFilterFactory();

inline constexpr std::string_view kAbuseBlocksBucket = "abuse_blocks";

struct AbuseBlock {
  std::string ip;
  int64_t until_unix = 0;
  std::string reason;
  int64_t created_unix = 0;
};

// The admin API (mxgatectl). Safe to use while the daemon runs: the filter
// reads the store on every connection, so changes apply at once.
// Blocks still in force at now_unix, in key order.
std::vector<AbuseBlock> listBlocks(KvStore& store, int64_t now_unix);
// ip may be in any form (e.g. "::ffff:192.0.2.1"). Returns true if a block existed.
bool removeBlock(KvStore& store, const std::string& ip);
// Adds or replaces the block for block.ip. Throws std::invalid_argument if
// block.ip is not an IP address. Line breaks in the reason become spaces.
void addBlock(KvStore& store, const AbuseBlock& block);

// The factory's work with the clock injected, for tests. A null store keeps
// blocks in memory only (with a warning).
using AbuseClock = std::function<std::chrono::system_clock::time_point()>;
std::unique_ptr<Filter> makeAbuseFilter(TableReader& config, KvStore* store, AbuseClock clock);

}  // namespace mxgate
