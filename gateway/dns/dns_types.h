// Values shared by the resolver and its backends.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mxgate {

// Values are the DNS wire type codes (RFC 1035, RFC 3596).
enum class RecordType : uint16_t {
  kA = 1,
  kCname = 5,
  kPtr = 12,
  kMx = 15,
  kTxt = 16,
  kAaaa = 28,
};

enum class DnsStatus {
  kOk,        // records holds at least one record
  kNxDomain,  // the name does not exist
  kNoData,    // the name exists, but has no record of this type
  kTimeout,   // no answer in time (also: the lookup was cancelled)
  kServFail,  // the server answered SERVFAIL or REFUSED
  kError,     // anything else: malformed answer, resolver shut down
};

struct DnsAnswer {
  DnsStatus status = DnsStatus::kError;
  // A/AAAA: the address as text; MX: "pref host"; TXT: the strings of one
  // record concatenated; PTR/CNAME: the target name (no trailing dot).
  std::vector<std::string> records;
  // TXT only: the separate character-strings of each record, parallel to records.
  std::vector<std::vector<std::string>> txt;
  // Seconds this answer may be cached (negative answers: the negative TTL).
  uint32_t ttl = 0;

  bool ok() const { return status == DnsStatus::kOk; }
};

std::string_view recordTypeName(RecordType type);
std::string_view dnsStatusName(DnsStatus status);

}  // namespace mxgate
