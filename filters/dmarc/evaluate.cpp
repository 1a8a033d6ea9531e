#include "filters/dmarc/evaluate.h"

#include "filters/dmarc/from_domain.h"
#include "gateway/dns/resolver.h"

namespace mxgate::dmarc {

PolicyLookup policyFromAnswer(const std::string& domain, const DnsAnswer& answer,
                              bool* try_org_domain) {
  PolicyLookup out;
  out.domain = domain;
  *try_org_domain = false;
  switch (answer.status) {
    case DnsStatus::kOk:
      break;
    case DnsStatus::kNxDomain:
    case DnsStatus::kNoData:
      *try_org_domain = true;
      out.reason = "no DMARC record";
      return out;
    default:
      out.status = PolicyLookup::Status::kTempError;
      out.reason = "DNS " + std::string(dnsStatusName(answer.status)) + " for _dmarc." + domain;
      return out;
  }
  const std::string* only = nullptr;
  size_t count = 0;
  for (const std::string& txt : answer.records) {
    if (!isDmarcRecord(txt)) continue;
    only = &txt;
    ++count;
  }
  if (count == 0) {
    *try_org_domain = true;
    out.reason = "no DMARC record";
    return out;
  }
  if (count > 1) {
    out.reason = "several DMARC records at _dmarc." + domain;
    return out;
  }
  ParsedRecord parsed = parsePolicyRecord(*only);
  if (parsed.status != ParsedRecord::Status::kOk) {
    out.status = PolicyLookup::Status::kPermError;
    out.reason = "invalid DMARC record at _dmarc." + domain + ": " + parsed.error;
    return out;
  }
  out.status = PolicyLookup::Status::kFound;
  out.record = std::move(parsed.record);
  return out;
}

asio::awaitable<PolicyLookup> discoverPolicy(Resolver& resolver, const PublicSuffixList& psl,
                                             std::string from_domain) {
  bool fallback = false;
  DnsAnswer a = co_await resolver.lookup("_dmarc." + from_domain, RecordType::kTxt);
  PolicyLookup first = policyFromAnswer(from_domain, a, &fallback);
  std::string org = psl.organizationalDomain(from_domain);
  if (!fallback || org == from_domain) co_return first;
  DnsAnswer b = co_await resolver.lookup("_dmarc." + org, RecordType::kTxt);
  PolicyLookup second = policyFromAnswer(org, b, &fallback);
  // Nothing at either name: the policy domain reported is the From domain.
  if (second.status == PolicyLookup::Status::kNone) second.domain = from_domain;
  co_return second;
}

namespace {

Policy downgrade(Policy p) {
  return p == Policy::kReject ? Policy::kQuarantine : Policy::kNone;
}

}  // namespace

Evaluation evaluate(const std::string& header_from, PolicyLookup lookup, const AuthFacts& auth,
                    const PublicSuffixList& psl, const std::function<uint32_t()>& sample) {
  Evaluation e;
  e.header_from = header_from;
  e.lookup = std::move(lookup);
  switch (e.lookup.status) {
    case PolicyLookup::Status::kNone:
      e.result = "none";
      return e;
    case PolicyLookup::Status::kTempError:
      e.result = "temperror";
      return e;
    case PolicyLookup::Status::kPermError:
      e.result = "permerror";
      return e;
    case PolicyLookup::Status::kFound:
      break;
  }
  // Alignment is judged under the record's modes, so only when one exists.
  // Only the aligned identifiers matter: an unaligned one could not have
  // produced a pass, so its temperror cannot change the result either.
  const PolicyRecord& rec = e.lookup.record;
  bool temperror = false;
  if (auto spf_domain = normalizeDomain(auth.spf.domain)) {
    bool is_aligned = aligned(*spf_domain, header_from, rec.aspf, psl);
    e.spf_aligned = is_aligned && auth.spf.result == "pass";
    temperror |= is_aligned && auth.spf.result == "temperror";
  }
  for (const DkimOutcome& d : auth.dkim) {
    auto d_domain = normalizeDomain(d.domain);
    if (!d_domain) continue;
    bool is_aligned = aligned(*d_domain, header_from, rec.adkim, psl);
    e.dkim_aligned |= is_aligned && d.result == "pass";
    temperror |= is_aligned && d.result == "temperror";
  }
  e.has_policy = true;
  bool subdomain = e.lookup.domain != header_from;
  e.policy = subdomain ? rec.subdomainPolicy() : rec.p;
  if (e.spf_aligned || e.dkim_aligned) {
    e.result = "pass";
    return e;
  }
  e.result = temperror ? "temperror" : "fail";
  if (temperror) return e;
  e.disposition = e.policy;
  // 6.6.4: a message outside the pct sample gets the next policy down.
  if (rec.pct < 100 && e.policy != Policy::kNone && sample() >= static_cast<uint32_t>(rec.pct)) {
    e.disposition = downgrade(e.policy);
    e.override_reason = kOverrideSampledOut;
  }
  return e;
}

int severity(const Evaluation& e) {
  int rank = e.result == "fail"        ? 4
             : e.result == "temperror" ? 3
             : e.result == "permerror" ? 2
             : e.result == "none"      ? 1
                                       : 0;
  return static_cast<int>(e.disposition) * 8 + rank;
}

}  // namespace mxgate::dmarc
