// DMARC evaluation for one Author Domain (RFC 7489 6.6): policy discovery
// through the shared resolver, identifier alignment, result and disposition.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "filters/dmarc/org_domain.h"
#include "filters/dmarc/policy_record.h"
#include "gateway/dns/dns_types.h"
#include "gateway/pipeline/types.h"

namespace mxgate {
class Resolver;
}

namespace mxgate::dmarc {

struct PolicyLookup {
  enum class Status {
    kFound,      // one valid record
    kNone,       // no record, or several (6.6.3 step 5)
    kTempError,  // DNS failure: the answer may differ later
    kPermError,  // a v=DMARC1 record that does not parse
  };
  Status status = Status::kNone;
  // Where the record was found (the From domain or its organizational
  // domain); for kNone and errors the domain last asked.
  std::string domain;
  PolicyRecord record;  // when kFound
  std::string reason;   // for logs and the Authentication-Results comment
};

// One step of discovery: what the TXT answer at _dmarc.<domain> says.
// Fallback to the organizational domain is the caller's (discoverPolicy).
PolicyLookup policyFromAnswer(const std::string& domain, const DnsAnswer& answer,
                              bool* try_org_domain);

// RFC 7489 6.6.3: _dmarc.<from_domain>, then, if no DMARC record is there,
// _dmarc.<organizational domain>. REQUIRES: from_domain normalized.
asio::awaitable<PolicyLookup> discoverPolicy(Resolver& resolver, const PublicSuffixList& psl,
                                             std::string from_domain);

// Why a failing message was not given its policy (the aggregate-report
// PolicyOverrideType, RFC 7489 appendix C).
inline constexpr const char* kOverrideSampledOut = "sampled_out";
inline constexpr const char* kOverrideLocalPolicy = "local_policy";
inline constexpr const char* kOverrideMailingList = "mailing_list";

struct Evaluation {
  std::string header_from;
  PolicyLookup lookup;
  std::string result;  // pass, fail, none, temperror, permerror
  // Judged only when a record was found (its adkim/aspf modes apply).
  bool spf_aligned = false;            // SPF passed for an aligned domain
  bool dkim_aligned = false;           // some DKIM signature passed for an aligned d=
  bool has_policy = false;             // a record was found: policy is meaningful
  Policy policy = Policy::kNone;       // p, or sp/p for a subdomain
  Policy disposition = Policy::kNone;  // what is done: after pct and overrides
  std::string override_reason;         // one of kOverride*, or empty
};

// Evaluates one Author Domain given its policy and the SPF/DKIM facts.
// sample() returns a number in [0, 100) for pct sampling. The disposition is
// the policy (after pct) when the result is fail, else none; local overrides
// are the filter's business.
Evaluation evaluate(const std::string& header_from, PolicyLookup lookup, const AuthFacts& auth,
                    const PublicSuffixList& psl, const std::function<uint32_t()>& sample);

// Orders evaluations by how strongly they call for action: disposition
// first, then fail > temperror > permerror > none > pass.
int severity(const Evaluation& e);

}  // namespace mxgate::dmarc
