#include "filters/abuse/abuse_filter.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gateway/config/table_reader.h"
#include "gateway/util/ip_set.h"
#include "store/kv_store.h"

namespace mxgate {
namespace {

using Clock = std::chrono::system_clock;
using Time = Clock::time_point;
using std::chrono::milliseconds;

constexpr size_t kShards = 16;
constexpr size_t kMaxTrackedIps = 100'000;
constexpr size_t kShardCap = kMaxTrackedIps / kShards;
constexpr size_t kMaxIgnoredSessions = 100'000;
// Expired blocks erased per new block, so the bucket cannot grow without
// bound while no single write costs more than a few syncs.
constexpr size_t kPrunePerBlock = 8;

int64_t toUnix(Time t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string utcText(int64_t unix) {
  std::time_t t = static_cast<std::time_t>(unix);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// "1m", "10m", "90s", "1h": the largest unit that divides the duration.
std::string durationText(milliseconds d) {
  int64_t ms = d.count();
  for (auto [unit, name] : {std::pair<int64_t, const char*>{86'400'000, "d"},
                            {3'600'000, "h"},
                            {60'000, "m"},
                            {1'000, "s"}}) {
    if (ms >= unit && ms % unit == 0) return std::to_string(ms / unit) + name;
  }
  return std::to_string(ms) + "ms";
}

std::string formatBlock(const AbuseBlock& b) {
  std::string reason = b.reason;
  std::replace_if(
      reason.begin(), reason.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
  return fmt::format("until={} created={} reason={}", b.until_unix, b.created_unix, reason);
}

bool takeInt(std::string_view& in, std::string_view label, int64_t* out) {
  if (in.substr(0, label.size()) != label) return false;
  in.remove_prefix(label.size());
  auto [p, ec] = std::from_chars(in.data(), in.data() + in.size(), *out);
  if (ec != std::errc()) return false;
  in.remove_prefix(p - in.data());
  return true;
}

std::optional<AbuseBlock> parseBlock(std::string_view key, std::string_view value) {
  AbuseBlock b;
  b.ip = key;
  constexpr std::string_view kReason = " reason=";
  std::string_view rest = value;
  if (!takeInt(rest, "until=", &b.until_unix) || !takeInt(rest, " created=", &b.created_unix) ||
      rest.substr(0, kReason.size()) != kReason) {
    spdlog::warn("abuse: ignoring malformed block for {}: \"{}\"", key, value);
    return std::nullopt;
  }
  b.reason = rest.substr(kReason.size());
  return b;
}

// Two-bucket sliding window: the count in the current fixed bucket plus the
// previous bucket's count weighted by how much of it still lies within the
// last `window`. Constant memory per IP; exact for evenly spread events and
// never short by more than the previous bucket's share.
struct WindowCounter {
  Time start{};  // of the current bucket
  uint32_t current = 0;
  uint32_t previous = 0;

  double add(Time now, milliseconds window) {
    if (now - start >= 2 * window) {
      previous = current = 0;
      start = now;
    } else if (now - start >= window) {
      previous = current;
      current = 0;
      start += window;
    }
    ++current;
    double elapsed = std::chrono::duration<double>(now - start) / window;
    return current + previous * (1 - std::clamp(elapsed, 0.0, 1.0));
  }
  void reset() { *this = {}; }
  bool idle(Time now, milliseconds window) const { return now - start >= 2 * window; }
};

struct IpHash {
  size_t operator()(const Ip6Bytes& b) const noexcept {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (uint8_t c : b) h = (h ^ c) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

struct Settings {
  int64_t connection_rate = 60;
  milliseconds connection_window = std::chrono::minutes(1);
  int64_t bad_session_limit = 10;
  milliseconds bad_session_window = std::chrono::minutes(10);
  int64_t bad_rcpt_threshold = 5;
  int64_t bad_auth_threshold = 1;
  milliseconds block_time = std::chrono::hours(1);
  IpSet exempt;
};

// Per-IP counters, sharded by address hash so that concurrent sessions rarely
// share a mutex. Memory is bounded: a full shard drops idle entries and then,
// if it must, the least recently seen sixteenth.
class Tracker {
 public:
  explicit Tracker(const Settings& s) : settings_(s) {}

  double addConnection(const Ip6Bytes& ip, Time now) {
    return withEntry(ip, now,
                     [&](Entry& e) { return e.connections.add(now, settings_.connection_window); });
  }
  double addBadSession(const Ip6Bytes& ip, Time now) {
    return withEntry(
        ip, now, [&](Entry& e) { return e.bad_sessions.add(now, settings_.bad_session_window); });
  }
  // After a block, so that lifting it (by expiry or by an admin) starts afresh.
  void forget(const Ip6Bytes& ip) {
    Shard& s = shardOf(ip);
    std::lock_guard lock(s.mu);
    s.entries.erase(ip);
  }

 private:
  struct Entry {
    WindowCounter connections;
    WindowCounter bad_sessions;
    Time last_seen;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<Ip6Bytes, Entry, IpHash> entries;
  };

  Shard& shardOf(const Ip6Bytes& ip) { return shards_[IpHash{}(ip) % kShards]; }

  template <typename Fn>
  double withEntry(const Ip6Bytes& ip, Time now, Fn fn) {
    Shard& s = shardOf(ip);
    std::lock_guard lock(s.mu);
    auto it = s.entries.find(ip);
    if (it == s.entries.end()) {
      if (s.entries.size() >= kShardCap) makeRoom(s, now);
      it = s.entries.emplace(ip, Entry{}).first;
    }
    it->second.last_seen = now;
    return fn(it->second);
  }

  void makeRoom(Shard& s, Time now) {
    std::erase_if(s.entries, [&](const auto& kv) {
      return kv.second.connections.idle(now, settings_.connection_window) &&
             kv.second.bad_sessions.idle(now, settings_.bad_session_window);
    });
    const size_t target = kShardCap - kShardCap / 16;
    if (s.entries.size() <= target) return;
    std::vector<std::pair<Time, Ip6Bytes>> by_age;
    by_age.reserve(s.entries.size());
    for (const auto& [ip, e] : s.entries) by_age.emplace_back(e.last_seen, ip);
    size_t drop = s.entries.size() - target;
    std::nth_element(by_age.begin(), by_age.begin() + drop, by_age.end());
    for (size_t i = 0; i < drop; ++i) s.entries.erase(by_age[i].second);
  }

  const Settings& settings_;
  std::array<Shard, kShards> shards_;
};

class AbuseFilter final : public Filter {
 public:
  AbuseFilter(Settings settings, KvStore* store, AbuseClock clock)
      : settings_(std::move(settings)), clock_(std::move(clock)), tracker_(settings_) {
    // The daemon always passes its store; only configuration checks
    // (--check-config, mxgatectl) build filters without one.
    if (store == nullptr) {
      owned_store_ = openMemoryStore();
      store = owned_store_.get();
    }
    store_ = store;
  }

  asio::awaitable<StageResult> check(Stage, FilterContext& ctx) override {
    const SessionInfo& session = ctx.session();
    if (exempt(session) || ctx.result().has("LIST_ALLOW_IP")) {
      ignoreSession(session.id);
      co_return StageResult::next();
    }
    const asio::ip::address ip = canonicalAddress(session.client_ip);
    const std::string ip_text = ip.to_string();
    const Time now = clock_();
    if (auto block = activeBlock(ip_text, toUnix(now))) {
      ignoreSession(session.id);
      ctx.addSymbol("ABUSE_BLOCKED", block->reason);
      co_return refusal(ip_text, block->until_unix);
    }
    if (settings_.connection_rate == 0) co_return StageResult::next();
    double count = tracker_.addConnection(toIp6Bytes(ip), now);
    if (count <= static_cast<double>(settings_.connection_rate)) co_return StageResult::next();
    std::string reason =
        fmt::format("connection rate: {} in {}", static_cast<int64_t>(std::ceil(count)),
                    durationText(settings_.connection_window));
    // If the store write throws, the pipeline skips this filter for this
    // connection; the counter stays high, so the next one tries again.
    int64_t until = writeBlock(ip, now, reason);
    ignoreSession(session.id);
    ctx.addSymbol("ABUSE_CONNECTION_RATE", reason);
    co_return refusal(ip_text, until);
  }

  void sessionEnded(const SessionInfo& session, const SessionStats& stats) override {
    if (takeIgnored(session.id) || exempt(session)) return;
    if (settings_.bad_session_limit == 0) return;
    // An authenticated session without a message is a mail client checking
    // its settings, not a probe; failed logins make any session bad, so
    // guessing passwords gets the client blocked.
    bool no_message = stats.messages_accepted == 0 && stats.messages_refused == 0;
    bool bad = (no_message && session.auth_user.empty()) ||
               stats.bad_recipients >= settings_.bad_rcpt_threshold ||
               stats.auth_failures >= settings_.bad_auth_threshold;
    if (!bad) return;
    const asio::ip::address ip = canonicalAddress(session.client_ip);
    const Time now = clock_();
    double count = tracker_.addBadSession(toIp6Bytes(ip), now);
    if (count <= static_cast<double>(settings_.bad_session_limit)) return;
    std::string reason =
        fmt::format("bad sessions: {} in {}", static_cast<int64_t>(std::ceil(count)),
                    durationText(settings_.bad_session_window));
    try {
      writeBlock(ip, now, reason);
    } catch (const std::exception& e) {
      spdlog::error("abuse: cannot block {}: {}", ip.to_string(), e.what());
    }
  }

 private:
  bool exempt(const SessionInfo& s) const {
    return s.trusted || settings_.exempt.contains(s.client_ip);
  }

  static StageResult refusal(const std::string& ip, int64_t until) {
    return StageResult::tempfail(
        421, "4.7.0",
        "Too many connections or failed sessions from " + ip + "; blocked until " + utcText(until),
        /*disconnect=*/true);
  }

  std::optional<AbuseBlock> activeBlock(const std::string& ip, int64_t now) {
    auto value = store_->get(kAbuseBlocksBucket, ip);
    if (!value) return std::nullopt;
    auto block = parseBlock(ip, *value);
    if (block && block->until_unix > now) return block;
    if (block) store_->erase(kAbuseBlocksBucket, ip);  // expired: rare, so the write is fine
    return std::nullopt;
  }

  // Returns the block's end. Throws StoreError.
  int64_t writeBlock(const asio::ip::address& ip, Time now, const std::string& reason) {
    AbuseBlock b{ip.to_string(), toUnix(now + settings_.block_time), reason, toUnix(now)};
    pruneExpired(toUnix(now));
    store_->put(kAbuseBlocksBucket, b.ip, formatBlock(b));
    tracker_.forget(toIp6Bytes(ip));
    spdlog::warn("abuse: blocked {} until {} ({})", b.ip, utcText(b.until_unix), reason);
    return b.until_unix;
  }

  void pruneExpired(int64_t now) {
    std::vector<std::string> expired;
    store_->scan(kAbuseBlocksBucket, "", [&](std::string_view key, std::string_view value) {
      auto b = parseBlock(key, value);
      if (b && b->until_unix <= now) expired.emplace_back(key);
      return expired.size() < kPrunePerBlock;
    });
    for (const auto& key : expired) store_->erase(kAbuseBlocksBucket, key);
  }

  // Sessions whose end is not accounted: exempt ones, and those we refused
  // ourselves (counting those too would re-block a client for being blocked).
  void ignoreSession(uint64_t id) {
    std::lock_guard lock(ignored_mu_);
    // Only reached if the pipeline stopped reporting session ends; losing the
    // set then merely counts a few exempt sessions.
    if (ignored_.size() >= kMaxIgnoredSessions) ignored_.clear();
    ignored_.insert(id);
  }
  bool takeIgnored(uint64_t id) {
    std::lock_guard lock(ignored_mu_);
    return ignored_.erase(id) > 0;
  }

  const Settings settings_;
  AbuseClock clock_;
  Tracker tracker_;
  std::unique_ptr<KvStore> owned_store_;
  KvStore* store_ = nullptr;
  std::mutex ignored_mu_;
  std::unordered_set<uint64_t> ignored_;
};

milliseconds readWindow(TableReader& config, std::string_view key, milliseconds def) {
  milliseconds d = config.getDuration(key, def);
  if (d < std::chrono::seconds(1)) config.fail(key, "must be at least 1s");
  return d;
}

Settings readSettings(TableReader& config) {
  Settings s;
  s.connection_rate = config.getInt("connection_rate", s.connection_rate, 0, 1'000'000);
  s.connection_window = readWindow(config, "connection_window", s.connection_window);
  s.bad_session_limit = config.getInt("bad_session_limit", s.bad_session_limit, 0, 1'000'000);
  s.bad_session_window = readWindow(config, "bad_session_window", s.bad_session_window);
  s.bad_rcpt_threshold = config.getInt("bad_rcpt_threshold", s.bad_rcpt_threshold, 1, 1'000'000);
  s.bad_auth_threshold = config.getInt("bad_auth_threshold", s.bad_auth_threshold, 1, 1'000'000);
  s.block_time = readWindow(config, "block_time", s.block_time);
  for (const std::string& entry : config.getStringList("exempt_networks", {})) {
    auto net = Network::parse(entry);
    if (!net)
      config.fail("exempt_networks", "\"" + entry + "\" is not an IP address or CIDR network");
    s.exempt.add(*net);
  }
  return s;
}

FilterSpec abuseSpec() {
  FilterSpec spec;
  spec.name = "abuse";
  spec.stages = {Stage::kConnect};
  spec.symbols = {
      {"ABUSE_BLOCKED", 0, "client is blocked for earlier abuse"},
      {"ABUSE_CONNECTION_RATE", 0, "client exceeded the connection rate and is now blocked"},
      {"ABUSE_CHECK_FAILED", 0, "the abuse check failed (state store error)"},
  };
  // Exempts clients the lists filter allow-listed at connect.
  spec.after = {"lists"};
  spec.timeout = std::chrono::seconds(1);
  // Skip, not tempfail: a broken state store must not stop all mail, and the
  // SMTP session limits still bound what one client can do meanwhile.
  spec.fail_mode = FailMode::kSkip;
  spec.fail_symbol = "ABUSE_CHECK_FAILED";
  return spec;
}

}  // namespace

std::vector<AbuseBlock> listBlocks(KvStore& store, int64_t now_unix) {
  std::vector<AbuseBlock> out;
  store.scan(kAbuseBlocksBucket, "", [&](std::string_view key, std::string_view value) {
    auto b = parseBlock(key, value);
    if (b && b->until_unix > now_unix) out.push_back(std::move(*b));
    return true;
  });
  return out;
}

bool removeBlock(KvStore& store, const std::string& ip) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(ip, ec);
  return store.erase(kAbuseBlocksBucket, ec ? ip : canonicalAddress(addr).to_string());
}

void addBlock(KvStore& store, const AbuseBlock& block) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(block.ip, ec);
  if (ec) throw std::invalid_argument("not an IP address: " + block.ip);
  AbuseBlock b = block;
  b.ip = canonicalAddress(addr).to_string();
  store.put(kAbuseBlocksBucket, b.ip, formatBlock(b));
}

std::unique_ptr<Filter> makeAbuseFilter(TableReader& config, KvStore* store, AbuseClock clock) {
  return std::make_unique<AbuseFilter>(readSettings(config), store, std::move(clock));
}

FilterFactory abuseFilterFactory() {
  return {abuseSpec, [](TableReader& config, const FilterDeps& deps) {
            return makeAbuseFilter(config, deps.store, [] { return Clock::now(); });
          }};
}

}  // namespace mxgate
