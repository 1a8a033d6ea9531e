#include "filters/dkim/dkim_filter.h"

#include <filesystem>
#include <map>
#include <set>
#include <utility>

#include <asio/experimental/awaitable_operators.hpp>

#include "filters/dkim/dkim_engine.h"
#include "filters/dkim/dkim_keys.h"
#include "filters/dkim/dkim_tags.h"
#include "gateway/config/table_reader.h"
#include "gateway/dns/resolver.h"
#include "gateway/util/strings.h"
#include "gateway/util/worker_pool.h"

namespace mxgate {
namespace {

using dkim::DkimEngine;
using dkim::KeyAnswers;
using dkim::SignatureCheck;
using dkim::SigningKey;

struct Settings {
  bool verify = true;
  bool sign = true;
  dkim::EngineOptions engine;
  // From domain -> its keys (several: e.g. one RSA and one ed25519 signature).
  std::map<std::string, std::vector<std::shared_ptr<const SigningKey>>> keys;
};

// Looks names[lo, hi) up concurrently, each answer into out[i]. A tree of
// `&&` keeps every lookup a child of this coroutine, so a cancellation (the
// filter timeout) reaches each of them and none outlives out.
asio::awaitable<void> lookupRange(Resolver& resolver, const std::vector<std::string>& names,
                                  std::vector<DnsAnswer>& out, size_t lo, size_t hi) {
  using namespace asio::experimental::awaitable_operators;
  if (hi - lo == 1) {
    out[lo] = co_await resolver.lookup(names[lo], RecordType::kTxt);
    co_return;
  }
  size_t mid = lo + (hi - lo) / 2;
  co_await (lookupRange(resolver, names, out, lo, mid) &&
            lookupRange(resolver, names, out, mid, hi));
}

std::string describe(const DkimOutcome& o) {
  std::string s = "d=" + o.domain;
  if (!o.selector.empty()) s += " s=" + o.selector;
  if (!o.reason.empty() && o.result != "pass") s += " (" + o.reason + ")";
  return s;
}

class DkimFilter final : public Filter {
 public:
  DkimFilter(Settings settings, const FilterDeps& deps)
      : settings_(std::move(settings)),
        engine_(std::make_shared<DkimEngine>(settings_.engine)),
        resolver_(deps.resolver),
        workers_(deps.workers) {}

  asio::awaitable<StageResult> check(Stage, FilterContext& ctx) override {
    const SessionInfo& s = ctx.session();
    if (settings_.sign && (s.trusted || !s.auth_user.empty())) {
      auto it = settings_.keys.find(dkim::fromDomain(ctx.message()));
      if (it != settings_.keys.end()) {
        co_await signMessage(ctx, it->second);
        co_return StageResult::next();
      }
    }
    if (settings_.verify) co_await verifyMessage(ctx);
    co_return StageResult::next();
  }

 private:
  // Runs fn on the worker pool (inline when there is none, as in a
  // configuration check). fn owns everything it reads: after a filter
  // timeout it may still be running while the session has moved on.
  template <class F>
  asio::awaitable<std::invoke_result_t<F>> offload(F fn) {
    if (workers_ == nullptr) co_return fn();
    co_return co_await workers_->run(std::move(fn));
  }

  asio::awaitable<void> signMessage(FilterContext& ctx,
                                    std::vector<std::shared_ptr<const SigningKey>> keys) {
    // Named, not a temporary in the co_await expression: g++ 12 destroys
    // such temporaries twice across a suspension.
    auto job = [engine = engine_, keys = std::move(keys), message = std::string(ctx.message())] {
      std::vector<std::pair<std::string, std::string>> out;  // value, "d= s="
      for (const auto& k : keys)
        out.emplace_back(engine->sign(message, *k), "d=" + k->domain + " s=" + k->selector);
      return out;
    };
    auto values = co_await offload(std::move(job));
    std::string detail;
    for (auto& [value, who] : values) {
      ctx.addHeader("DKIM-Signature", std::move(value));
      detail += (detail.empty() ? "" : ", ") + who;
    }
    // Later edits (the subject tag) would break what was just signed.
    ctx.freezeContent();
    ctx.addSymbol("DKIM_SIGNED", detail);
  }

  asio::awaitable<void> verifyMessage(FilterContext& ctx) {
    std::vector<dkim::SignatureRef> refs = dkim::findSignatures(ctx.message());
    if (refs.empty()) {
      ctx.auth().dkim_checked = true;
      ctx.addSymbol("DKIM_NONE");
      co_return;
    }
    std::vector<std::string> names;
    {
      std::set<std::string> seen;
      for (size_t i = 0; i < refs.size() && i < settings_.engine.max_signatures; ++i) {
        std::string n = refs[i].keyName();
        if (!n.empty() && seen.insert(n).second) names.push_back(std::move(n));
      }
    }
    std::vector<DnsAnswer> answers(names.size());  // default status: kError
    if (resolver_ != nullptr && !names.empty())
      co_await lookupRange(*resolver_, names, answers, 0, names.size());
    KeyAnswers keys;
    for (size_t i = 0; i < names.size(); ++i) keys.emplace(names[i], std::move(answers[i]));

    auto job = [engine = engine_, keys = std::move(keys), message = std::string(ctx.message())] {
      return engine->verify(message, keys);
    };
    std::vector<SignatureCheck> checks = co_await offload(std::move(job));
    record(ctx, checks);
  }

  static void record(FilterContext& ctx, const std::vector<SignatureCheck>& checks) {
    std::map<std::string, std::string> details;  // symbol -> detail
    auto add = [&](const std::string& symbol, const std::string& what) {
      std::string& d = details[symbol];
      d += (d.empty() ? "" : ", ") + what;
    };
    for (const SignatureCheck& c : checks) {
      const DkimOutcome& o = c.outcome;
      if (o.result == "pass")
        add("DKIM_PASS", describe(o));
      else if (o.result == "fail")
        add("DKIM_FAIL", describe(o));
      else if (o.result == "temperror")
        add("DKIM_TEMPERROR", describe(o));
      else if (o.result == "permerror")
        add(c.key_problem ? "DKIM_INVALID_KEY" : "DKIM_PERMERROR", describe(o));
      if (c.weak)
        add("DKIM_WEAK_ALGORITHM",
            "d=" + o.domain + " " +
                (o.algorithm == "rsa-sha1" ? "rsa-sha1" : std::to_string(c.key_bits) + "-bit RSA"));
      ctx.auth().dkim.push_back(o);
    }
    ctx.auth().dkim_checked = true;
    for (auto& [symbol, detail] : details) ctx.addSymbol(symbol, std::move(detail));
  }

  const Settings settings_;
  // Shared with worker jobs, which may outlive this filter after a reload.
  const std::shared_ptr<const DkimEngine> engine_;
  Resolver* const resolver_;
  WorkerPool* const workers_;
};

FilterSpec dkimSpec() {
  FilterSpec spec;
  spec.name = "dkim";
  spec.stages = {Stage::kData};
  spec.symbols = {
      {"DKIM_PASS", -0.5, "a DKIM signature verified"},
      {"DKIM_FAIL", 3, "a DKIM signature did not verify (altered message or forged)"},
      {"DKIM_INVALID_KEY", 1, "a DKIM key record is missing, revoked or malformed"},
      {"DKIM_PERMERROR", 1, "a DKIM signature is malformed, expired or unsupported"},
      {"DKIM_TEMPERROR", 0, "a DKIM key could not be fetched (DNS failure)"},
      {"DKIM_NONE", 0, "no DKIM signature"},
      {"DKIM_WEAK_ALGORITHM", 1, "a DKIM signature uses rsa-sha1 or an RSA key under 1024 bits"},
      {"DKIM_SIGNED", 0, "the message was DKIM-signed here"},
  };
  // Above the resolver's default deadline (5s), so a slow key server gives
  // temperror rather than a filter timeout.
  spec.timeout = std::chrono::seconds(10);
  spec.fail_mode = FailMode::kSkip;
  spec.fail_symbol = "DKIM_ERROR";
  spec.enabled_by_default = false;
  return spec;
}

std::unique_ptr<Filter> createDkim(TableReader& config, const FilterDeps& deps) {
  Settings s;
  s.verify = config.getBool("verify", true);
  s.sign = config.getBool("sign", true);
  s.engine.min_rsa_bits = unsigned(config.getInt("min_rsa_bits", 512, 512, 4096));
  s.engine.max_signatures = size_t(config.getInt("max_signatures", 10, 1, 100));
  std::string body = config.getString("body_canonicalization", "relaxed");
  if (body != "relaxed" && body != "simple")
    config.fail("body_canonicalization", "must be \"relaxed\" or \"simple\", not \"" + body + "\"");
  for (TableReader& k : config.getTableArray("keys")) {
    std::string domain = toLower(k.getString("domain", ""));
    std::string selector = k.getString("selector", "");
    std::string file = k.getString("key_file", "");
    if (domain.empty()) k.fail("domain", "is required");
    if (selector.empty()) k.fail("selector", "is required");
    if (file.empty()) k.fail("key_file", "is required");
    std::filesystem::path p(file);
    if (p.is_relative() && !k.file().empty()) p = std::filesystem::path(k.file()).parent_path() / p;
    SigningKey key;
    try {
      key = dkim::loadSigningKey(p.string(), domain, selector);
    } catch (const std::runtime_error& e) {
      k.fail("key_file", e.what());
    }
    key.relaxed_body = body == "relaxed";
    auto& list = s.keys[domain];
    for (const auto& other : list)
      if (other->selector == selector) k.fail("selector", "duplicate key for " + domain);
    list.push_back(std::make_shared<const SigningKey>(std::move(key)));
    k.finish();
  }
  if (!s.verify && !s.sign) config.fail("verify", "verify and sign are both off");
  return std::make_unique<DkimFilter>(std::move(s), deps);
}

}  // namespace

FilterFactory dkimFilterFactory() {
  return {dkimSpec, createDkim};
}

}  // namespace mxgate
