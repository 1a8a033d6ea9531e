// DMARC policy records (RFC 7489 6.3): the TXT record at _dmarc.<domain>.
//
// Parsing is strict where a wrong guess would change enforcement, and
// follows the RFC's explicit leniencies elsewhere:
//  - a record is a DMARC record only if its first tag is v=DMARC1; anything
//    else at _dmarc.<domain> is not ours and is discarded (6.6.3 step 2);
//  - a malformed tag list (a part without '=', a repeated tag) or a bad
//    value of p, sp, adkim, aspf, pct, ri or fo makes the record invalid,
//    which the filter reports as permerror (RFC 7489 11.2);
//  - a missing or bad p, or a bad sp, with at least one valid rua URI acts
//    as p=none (6.6.3 step 6);
//  - unknown tags are ignored (6.3); rf values outside the registry are
//    ignored ("SHOULD ignore it", 6.3); rua/ruf entries that are not URIs
//    are dropped, since they only affect reporting.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxgate::dmarc {

enum class Policy : uint8_t { kNone, kQuarantine, kReject };
enum class Alignment : uint8_t { kRelaxed, kStrict };

const char* policyName(Policy p);        // "none", "quarantine", "reject"
const char* alignmentName(Alignment a);  // "r", "s"

struct PolicyRecord {
  Policy p = Policy::kNone;
  std::optional<Policy> sp;  // absent: p applies to subdomains too
  int pct = 100;
  Alignment adkim = Alignment::kRelaxed;
  Alignment aspf = Alignment::kRelaxed;
  std::string fo = "0";                 // as published, lowercased, e.g. "1:d"
  std::vector<std::string> rf{"afrf"};  // as published, lowercased
  uint32_t ri = 86400;
  std::vector<std::string> rua;  // URIs as published (size limit "!10m" kept)
  std::vector<std::string> ruf;
  // p was missing or invalid (or sp invalid) and the record acts as p=none
  // because it has report URIs (6.6.3 step 6).
  bool p_defaulted = false;

  // The policy for a message whose From domain is a subdomain of the domain
  // the record was found at (org-domain fallback): sp if given, else p.
  Policy subdomainPolicy() const { return sp.value_or(p); }
};

struct ParsedRecord {
  enum class Status { kOk, kNotDmarc, kInvalid };
  Status status = Status::kNotDmarc;
  PolicyRecord record;  // valid when kOk
  std::string error;    // why kInvalid
};

// True if the text's first tag is v=DMARC1 (the record is meant as DMARC).
bool isDmarcRecord(std::string_view text);

ParsedRecord parsePolicyRecord(std::string_view text);

}  // namespace mxgate::dmarc
