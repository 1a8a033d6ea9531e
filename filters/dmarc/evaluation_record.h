// The stored record of one DMARC evaluation, the input of aggregate reports
// (RFC 7489 7.2, appendix C). Format: README.md, "Evaluation records".
//
// Bucket "dmarc_records"; key "<unix ms, 13 digits>-<16 hex digits>", so keys
// sort by time; value: lines "name=value\n", first "v=1".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxgate::dmarc {

inline constexpr std::string_view kRecordsBucket = "dmarc_records";

// Outside EvaluationRecord: default member initializers of a nested class
// are not usable (std::optional<Nested>::emplace) within the enclosing class
// for clang.
struct RecordSpf {
  std::string result;  // RFC 8601 word; "" when SPF was not checked
  std::string domain;
  std::string scope;  // "mfrom" or "helo"
  bool operator==(const RecordSpf&) const = default;
};

struct RecordDkim {
  std::string result;
  std::string domain;
  std::string selector;
  bool operator==(const RecordDkim&) const = default;
};

// The policy record as published (aggregate report policy_published).
struct PublishedPolicy {
  std::string p, sp;  // sp "" when absent
  int pct = 100;
  std::string adkim = "r", aspf = "r";
  std::string fo = "0";
  std::vector<std::string> rua;
  bool operator==(const PublishedPolicy&) const = default;
};

struct EvaluationRecord {
  using Spf = RecordSpf;
  using Dkim = RecordDkim;
  using Published = PublishedPolicy;

  int64_t time_ms = 0;        // unix time of the evaluation, milliseconds
  std::string header_from;    // RFC5322.From domain ("" when none was usable)
  std::string policy_domain;  // where the policy was looked for / found
  std::string source_ip;      // client IP, IPv4-mapped IPv6 written as IPv4
  std::string helo;
  std::string mail_from;                  // envelope sender, "" for <>
  std::vector<std::string> rcpt_domains;  // distinct envelope recipient domains
  Spf spf;
  std::vector<Dkim> dkim;  // one per signature, in message order

  std::string result;                  // DMARC: pass, fail, none, temperror, permerror
  bool spf_aligned = false;            // policy_evaluated spf: aligned pass
  bool dkim_aligned = false;           // policy_evaluated dkim: aligned pass
  std::string policy;                  // applied p or sp; "" when no record was found
  std::string disposition;             // none, quarantine, reject
  std::string override_reason;         // sampled_out, local_policy, mailing_list or ""
  std::string reason;                  // free text (why none/permerror/temperror, ...)
  std::optional<Published> published;  // the record found, if any

  bool operator==(const EvaluationRecord&) const = default;
};

std::string encodeEvaluationRecord(const EvaluationRecord& r);
// nullopt if the value is not a version-1 record or a known field is
// malformed. Unknown fields are skipped (later versions may add some).
std::optional<EvaluationRecord> decodeEvaluationRecord(std::string_view value);
// "<time_ms zero-padded to 13 digits>-<unique as 16 hex digits>".
std::string evaluationRecordKey(int64_t time_ms, uint64_t unique);

}  // namespace mxgate::dmarc
