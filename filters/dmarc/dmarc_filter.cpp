#include "filters/dmarc/dmarc_filter.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/this_coro.hpp>

#include "filters/dmarc/evaluate.h"
#include "filters/dmarc/evaluation_record.h"
#include "filters/dmarc/from_domain.h"
#include "filters/dmarc/org_domain.h"
#include "gateway/config/table_reader.h"
#include "gateway/util/ip_set.h"
#include "gateway/util/worker_pool.h"
#include "store/kv_store.h"

namespace mxgate {
namespace {

using dmarc::Evaluation;
using dmarc::Policy;

constexpr const char* kDefaultPsl = "/usr/share/publicsuffix/public_suffix_list.dat";
// A From naming more domains than this is treated as unusable: each domain
// costs up to two DNS lookups within one filter timeout.
constexpr size_t kMaxFromDomains = 8;

struct Settings {
  bool reject = true;
  bool reject_invalid_from = false;
  bool reject_multiple_from_domains = false;
  IpSet local_policy_networks;
  std::vector<std::string> mailing_list_domains;  // normalized
  bool records = true;
  std::shared_ptr<const dmarc::PublicSuffixList> psl;
};

// The domain of an address ("" for <> or a domain that does not normalize).
std::string addressDomain(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  return dmarc::normalizeDomain(address.substr(at + 1)).value_or("");
}

bool inDomainList(const std::vector<std::string>& list, const std::string& domain) {
  if (domain.empty()) return false;
  for (const std::string& entry : list) {
    if (domain == entry) return true;
    if (domain.size() > entry.size() && domain.ends_with(entry) &&
        domain[domain.size() - entry.size() - 1] == '.')
      return true;
  }
  return false;
}

uint32_t randomSample() {
  thread_local std::mt19937 gen{std::random_device{}()};
  return std::uniform_int_distribution<uint32_t>(0, 99)(gen);
}

const char* symbolFor(const Evaluation& e) {
  if (e.result == "pass") return "DMARC_PASS";
  if (e.result == "none") return "DMARC_NONE";
  if (e.result == "temperror") return "DMARC_TEMPERROR";
  if (e.result == "permerror") return "DMARC_PERMERROR";
  if (e.override_reason == dmarc::kOverrideLocalPolicy ||
      e.override_reason == dmarc::kOverrideMailingList)
    if (e.disposition == Policy::kNone && e.policy != Policy::kNone) return "DMARC_FAIL_OVERRIDDEN";
  switch (e.policy) {
    case Policy::kReject:
      return "DMARC_FAIL_REJECT";
    case Policy::kQuarantine:
      return "DMARC_FAIL_QUARANTINE";
    case Policy::kNone:
      return "DMARC_FAIL_NONE";
  }
  return "DMARC_FAIL_NONE";
}

std::string symbolDetail(const Evaluation& e) {
  std::string d = e.header_from;
  if (e.has_policy)
    d += fmt::format(" p={} dis={}", dmarc::policyName(e.policy), dmarc::policyName(e.disposition));
  if (!e.override_reason.empty()) d += " override=" + e.override_reason;
  if (!e.lookup.reason.empty()) d += " (" + e.lookup.reason + ")";
  return d;
}

// Writes records off the event loop; a failure is logged and the message
// goes on (the records feed reports, they do not decide delivery).
asio::awaitable<void> writeRecords(WorkerPool* workers, KvStore* store,
                                   std::vector<std::pair<std::string, std::string>> items) {
  auto write = [store, items = std::move(items)] {
    for (const auto& [key, value] : items) store->put(dmarc::kRecordsBucket, key, value);
  };
  try {
    if (workers)
      co_await workers->run(std::move(write));
    else
      write();
  } catch (const std::exception& e) {
    spdlog::error("dmarc: cannot store evaluation record: {}", e.what());
  }
}

class DmarcFilter final : public Filter {
 public:
  DmarcFilter(Settings settings, const FilterDeps& deps, DmarcHooks hooks)
      : settings_(std::move(settings)),
        deps_(deps),
        clock_(hooks.clock ? std::move(hooks.clock)
                           : [] { return std::chrono::system_clock::now(); }),
        sample_(hooks.sample ? std::move(hooks.sample) : randomSample),
        nonce_(static_cast<uint64_t>(std::random_device{}()) << 32) {}

  asio::awaitable<StageResult> check(Stage, FilterContext& ctx) override {
    const SessionInfo& session = ctx.session();
    // Our own users' mail is not judged by the policy of its From domain.
    if (session.trusted || !session.auth_user.empty()) co_return StageResult::next();
    const bool network_override = settings_.local_policy_networks.contains(session.client_ip);

    dmarc::FromDomains from = dmarc::fromDomains(ctx.message());
    if (from.domains.empty() || from.domains.size() > kMaxFromDomains) {
      std::string reason = from.fields == 0       ? "no From field"
                           : from.domains.empty() ? "no usable domain in From"
                                                  : "too many From domains";
      co_return co_await refuseFrom(ctx, from, reason,
                                    settings_.reject_invalid_from && !network_override);
    }
    if (from.domains.size() > 1 && settings_.reject_multiple_from_domains && !network_override)
      co_return co_await refuseFrom(ctx, from, "several From domains", true);
    if (deps_.resolver == nullptr) throw std::runtime_error("no DNS resolver");

    const std::string mail_from_domain = addressDomain(ctx.envelope().mail_from);
    std::vector<Evaluation> evals;
    for (const std::string& domain : from.domains) {
      dmarc::PolicyLookup lookup =
          co_await dmarc::discoverPolicy(*deps_.resolver, *settings_.psl, domain);
      Evaluation e =
          dmarc::evaluate(domain, std::move(lookup), ctx.auth(), *settings_.psl, sample_);
      applyLocalPolicy(e, network_override, mail_from_domain);
      evals.push_back(std::move(e));
    }
    const Evaluation& top = *std::max_element(
        evals.begin(), evals.end(),
        [](const Evaluation& a, const Evaluation& b) { return severity(a) < severity(b); });

    DmarcOutcome& out = ctx.auth().dmarc;
    out.result = top.result;
    out.header_from = top.header_from;
    out.policy = top.has_policy ? dmarc::policyName(top.policy) : "";
    out.disposition = dmarc::policyName(top.disposition);
    out.reason = top.lookup.reason;
    if (!top.override_reason.empty())
      out.reason += (out.reason.empty() ? "" : "; ") + ("override " + top.override_reason);
    ctx.addSymbol(symbolFor(top), symbolDetail(top));

    std::vector<dmarc::EvaluationRecord> records;
    for (const Evaluation& e : evals) records.push_back(recordOf(ctx, e));
    co_await store(std::move(records));

    if (top.disposition == Policy::kReject)
      co_return StageResult::reject(550, "5.7.1",
                                    "Message rejected by the DMARC policy of " + top.header_from);
    if (top.disposition == Policy::kQuarantine) ctx.requireAction(Action::kQuarantine);
    co_return StageResult::next();
  }

 private:
  // Local policy: the disposition a failing message actually gets.
  void applyLocalPolicy(Evaluation& e, bool network_override,
                        const std::string& mail_from_domain) const {
    if (e.result != "fail" || e.disposition == Policy::kNone) return;
    if (network_override) {
      e.disposition = Policy::kNone;
      e.override_reason = dmarc::kOverrideLocalPolicy;
    } else if (inDomainList(settings_.mailing_list_domains, mail_from_domain) ||
               inDomainList(settings_.mailing_list_domains, e.header_from)) {
      e.disposition = Policy::kNone;
      e.override_reason = dmarc::kOverrideMailingList;
    } else if (e.disposition == Policy::kReject && !settings_.reject) {
      e.disposition = Policy::kQuarantine;
      e.override_reason = dmarc::kOverrideLocalPolicy;
    }
  }

  // No usable Author Domain: permerror, and a refusal if configured.
  asio::awaitable<StageResult> refuseFrom(FilterContext& ctx, const dmarc::FromDomains& from,
                                          const std::string& reason, bool refuse) {
    DmarcOutcome& out = ctx.auth().dmarc;
    out.result = "permerror";
    out.header_from = from.domains.empty() ? "" : from.domains.front();
    out.disposition = refuse ? "reject" : "none";
    out.reason = reason;
    ctx.addSymbol("DMARC_PERMERROR", reason);
    std::vector<dmarc::EvaluationRecord> records;
    for (size_t i = 0; i < std::max<size_t>(1, from.domains.size()); ++i) {
      Evaluation e;
      e.header_from = i < from.domains.size() ? from.domains[i] : "";
      e.result = "permerror";
      e.disposition = refuse ? Policy::kReject : Policy::kNone;
      e.lookup.reason = reason;
      records.push_back(recordOf(ctx, e));
    }
    co_await store(std::move(records));
    if (refuse) co_return StageResult::reject(550, "5.7.1", "Message rejected: " + reason);
    co_return StageResult::next();
  }

  dmarc::EvaluationRecord recordOf(FilterContext& ctx, const Evaluation& e) const {
    dmarc::EvaluationRecord r;
    r.time_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_().time_since_epoch()).count();
    r.header_from = e.header_from;
    r.policy_domain = e.lookup.domain;
    r.source_ip = canonicalAddress(ctx.session().client_ip).to_string();
    r.helo = ctx.session().helo;
    r.mail_from = ctx.envelope().mail_from;
    for (const Recipient& rcpt : ctx.envelope().rcpts) {
      std::string d = addressDomain(rcpt.address);
      if (!d.empty() &&
          std::find(r.rcpt_domains.begin(), r.rcpt_domains.end(), d) == r.rcpt_domains.end())
        r.rcpt_domains.push_back(std::move(d));
    }
    const AuthFacts& auth = ctx.auth();
    r.spf = {auth.spf.result, auth.spf.domain, auth.spf.identity == "helo" ? "helo" : "mfrom"};
    for (const DkimOutcome& d : auth.dkim) r.dkim.push_back({d.result, d.domain, d.selector});
    r.result = e.result;
    r.spf_aligned = e.spf_aligned;
    r.dkim_aligned = e.dkim_aligned;
    r.policy = e.has_policy ? dmarc::policyName(e.policy) : "";
    r.disposition = dmarc::policyName(e.disposition);
    r.override_reason = e.override_reason;
    r.reason = e.lookup.reason;
    if (e.lookup.status == dmarc::PolicyLookup::Status::kFound) {
      const dmarc::PolicyRecord& p = e.lookup.record;
      r.published = dmarc::EvaluationRecord::Published{dmarc::policyName(p.p),
                                                       p.sp ? dmarc::policyName(*p.sp) : "",
                                                       p.pct,
                                                       dmarc::alignmentName(p.adkim),
                                                       dmarc::alignmentName(p.aspf),
                                                       p.fo,
                                                       p.rua};
    }
    return r;
  }

  asio::awaitable<void> store(std::vector<dmarc::EvaluationRecord> records) {
    if (!settings_.records || deps_.store == nullptr) co_return;
    std::vector<std::pair<std::string, std::string>> items;
    for (const auto& r : records)
      items.emplace_back(dmarc::evaluationRecordKey(r.time_ms, nonce_ | sequence_++),
                         dmarc::encodeEvaluationRecord(r));
    // Detached: the verdict must not wait for, or be cancelled with, a disk
    // sync. The store outlives filters; the job owns its data.
    asio::co_spawn(co_await asio::this_coro::executor,
                   writeRecords(deps_.workers, deps_.store, std::move(items)), asio::detached);
  }

  const Settings settings_;
  const FilterDeps deps_;
  const std::function<std::chrono::system_clock::time_point()> clock_;
  const std::function<uint32_t()> sample_;
  const uint64_t nonce_;  // high 32 bits of record keys: unique per filter instance
  std::atomic<uint32_t> sequence_{0};
};

Settings readSettings(TableReader& config) {
  Settings s;
  s.reject = config.getBool("reject", s.reject);
  s.reject_invalid_from = config.getBool("reject_invalid_from", s.reject_invalid_from);
  s.reject_multiple_from_domains =
      config.getBool("reject_multiple_from_domains", s.reject_multiple_from_domains);
  for (const std::string& entry : config.getStringList("local_policy_networks", {})) {
    auto net = Network::parse(entry);
    if (!net)
      config.fail("local_policy_networks",
                  "\"" + entry + "\" is not an IP address or CIDR network");
    s.local_policy_networks.add(*net);
  }
  for (const std::string& entry : config.getStringList("mailing_list_domains", {})) {
    auto d = dmarc::normalizeDomain(entry);
    if (!d) config.fail("mailing_list_domains", "\"" + entry + "\" is not a domain name");
    s.mailing_list_domains.push_back(*d);
  }
  s.records = config.getBool("records", s.records);
  std::filesystem::path psl = config.getString("public_suffix_list", kDefaultPsl);
  if (psl.is_relative() && !config.file().empty())
    psl = std::filesystem::path(config.file()).parent_path() / psl;
  try {
    s.psl = dmarc::PublicSuffixList::load(psl.string());
  } catch (const std::exception& e) {
    config.fail("public_suffix_list", e.what());
  }
  return s;
}

FilterSpec dmarcSpec() {
  FilterSpec spec;
  spec.name = "dmarc";
  spec.stages = {Stage::kData};
  spec.symbols = {
      {"DMARC_PASS", -0.5, "DMARC pass: aligned SPF or DKIM pass"},
      {"DMARC_FAIL_REJECT", 5,
       "DMARC fail, policy reject (weighs when not rejected in-session: pct, reject = false)"},
      {"DMARC_FAIL_QUARANTINE", 3, "DMARC fail, policy quarantine"},
      {"DMARC_FAIL_NONE", 0.5, "DMARC fail, policy none"},
      {"DMARC_FAIL_OVERRIDDEN", 0,
       "DMARC fail, policy not applied by local policy (forwarder network, mailing list)"},
      {"DMARC_NONE", 0, "no DMARC policy for the From domain"},
      {"DMARC_TEMPERROR", 0, "DMARC temporary error (DNS)"},
      {"DMARC_PERMERROR", 0, "DMARC permanent error (bad record, no usable From domain)"},
      {"DMARC_CHECK_FAILED", 0, "the DMARC filter failed (timeout or internal error)"},
  };
  // Reads the facts of the spf and dkim filters.
  spec.after = {"spf", "dkim"};
  // Two TXT lookups per From domain, each bounded by dns.timeout.
  spec.timeout = std::chrono::seconds(12);
  // A broken check must not stop mail; the message is then scored without it.
  spec.fail_mode = FailMode::kSkip;
  spec.fail_symbol = "DMARC_CHECK_FAILED";
  // Needs working DNS: off unless [filters.dmarc] enabled = true.
  spec.enabled_by_default = false;
  return spec;
}

}  // namespace

std::unique_ptr<Filter> makeDmarcFilter(TableReader& config, const FilterDeps& deps,
                                        DmarcHooks hooks) {
  return std::make_unique<DmarcFilter>(readSettings(config), deps, std::move(hooks));
}

FilterFactory dmarcFilterFactory() {
  return {dmarcSpec, [](TableReader& config, const FilterDeps& deps) {
            return makeDmarcFilter(config, deps);
          }};
}

}  // namespace mxgate
