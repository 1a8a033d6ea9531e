// The filter contract.
//
// A filter is declared as data (FilterSpec: name, stages, symbols, ordering,
// timeout, failure mode) and built once per configuration load by its factory.
// The instance is shared by every session on every event-loop thread, so
// check() must be safe to call concurrently; per-message state lives in the
// FilterContext it is given.
//
// check() returns exactly one StageResult per call: a coroutine cannot
// "continue twice" or forget to answer. If it throws or overruns its timeout,
// the pipeline applies the declared FailMode; mail is never accepted unscanned
// because a filter broke.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "gateway/pipeline/types.h"

namespace mxgate {

class KvStore;
class Resolver;
class TableReader;
class SymbolTable;
class WorkerPool;

enum class FailMode {
  kTempfail,  // answer 451 4.3.0 (or 421 at connect) and let the client retry
  kSkip,      // carry on without this filter, adding its failure symbol
};

struct SymbolSpec {
  std::string name;  // UPPER_SNAKE
  double default_weight = 0;
  std::string description;
};

struct FilterSpec {
  std::string name;  // lower_snake, equals the folder under filters/
  std::vector<Stage> stages;
  std::vector<SymbolSpec> symbols;
  std::vector<std::string> after;  // filters that must run first where stages overlap
  std::chrono::milliseconds timeout{5000};
  FailMode fail_mode = FailMode::kTempfail;
  // Added (with its configured weight) when the filter fails in kSkip mode.
  std::string fail_symbol;
  // Content checks are skipped for messages marked skip_content (allow lists).
  bool content_check = false;
  // false: the filter runs only when its section says `enabled = true`
  // (e.g. it needs network access the default configuration lacks).
  bool enabled_by_default = true;
};

// What a filter decides at one stage.
struct StageResult {
  enum class Kind { kContinue, kReject, kTempfail };
  Kind kind = Kind::kContinue;
  Reply reply;              // for kReject / kTempfail
  bool disconnect = false;  // close the session after the reply (e.g. 421)

  static StageResult next() { return {}; }
  static StageResult reject(int code, std::string enhanced, std::string text) {
    return {Kind::kReject, {code, std::move(enhanced), std::move(text)}, false};
  }
  static StageResult tempfail(int code, std::string enhanced, std::string text,
                              bool disconnect = false) {
    return {Kind::kTempfail, {code, std::move(enhanced), std::move(text)}, disconnect};
  }
};

// Everything a filter may read at a stage, plus where it writes symbols.
// REQUIRES: the referenced objects outlive the check() call.
class FilterContext {
 public:
  FilterContext(const SessionInfo& session, const Envelope& envelope, const SymbolTable& symbols,
                ScanResult& result)
      : session_(session), envelope_(envelope), symbols_(symbols), result_(result) {}

  const SessionInfo& session() const { return session_; }
  const Envelope& envelope() const { return envelope_; }
  // At kRcpt: the recipient under consideration (already syntax-checked).
  const Recipient* recipient() const { return rcpt_; }
  // At kData: the whole message as received (CRLF line ends, dot-unstuffed).
  std::string_view message() const { return message_; }

  // Adds a symbol with its configured weight. REQUIRES: the calling filter
  // declared it in its spec (unknown names are logged and weigh 0).
  void addSymbol(std::string_view name, std::string detail = {});
  // Allow-listing: content filters will not run for this message.
  void skipContent() { skip_content_ = true; }
  bool contentSkipped() const { return skip_content_; }
  const ScanResult& result() const { return result_; }
  // Sender-authentication facts of this message (see AuthFacts).
  AuthFacts& auth() { return result_.auth(); }
  // Message edits applied when the message is spooled (see ScanResult).
  void addHeader(std::string name, std::string value) {
    result_.addHeader(std::move(name), std::move(value));
  }
  void removeRange(size_t offset, size_t length) { result_.removeRange(offset, length); }
  void freezeContent() { result_.freezeContent(); }
  void requireAction(Action a) { result_.requireAction(a); }

  // Pipeline-internal setters.
  void setRecipient(const Recipient* r) { rcpt_ = r; }
  void setMessage(std::string_view m) { message_ = m; }
  void setFilterName(std::string_view n) { filter_ = n; }

 private:
  const SessionInfo& session_;
  const Envelope& envelope_;
  const SymbolTable& symbols_;
  ScanResult& result_;
  const Recipient* rcpt_ = nullptr;
  std::string_view message_;
  std::string_view filter_;
  bool skip_content_ = false;
};

class Filter {
 public:
  virtual ~Filter() = default;
  // REQUIRES: stage is one of the stages in this filter's spec.
  virtual asio::awaitable<StageResult> check(Stage stage, FilterContext& ctx) = 0;
  // Called once when a session ends, however it ended. Must not block.
  virtual void sessionEnded(const SessionInfo&, const SessionStats&) {}
};

// Shared services a factory may hand to its filter.
struct FilterDeps {
  KvStore* store = nullptr;  // the daemon's key-value store; outlives filters
  // The one shared, caching DNS resolver; outlives filters. Null when only
  // validating a configuration: filters must not use it at build time.
  Resolver* resolver = nullptr;
  // The bounded pool for blocking library calls (never block an event loop).
  WorkerPool* workers = nullptr;
};

// Registered once per filter in filters/registry.cpp.
struct FilterFactory {
  // The filter's declaration with its built-in defaults.
  std::function<FilterSpec()> spec;
  // Builds an instance from [filters.<name>]. Throws ConfigError (via
  // TableReader::fail) for bad settings. The pipeline reads the common keys
  // (enabled, timeout, on_error) before calling this; the factory must read
  // every other key it accepts, and nothing else, since unknown keys are errors.
  std::function<std::unique_ptr<Filter>(TableReader& config, const FilterDeps& deps)> create;
};

// The registration list (filters/registry.cpp), in declaration order.
const std::vector<FilterFactory>& filterRegistry();

}  // namespace mxgate
