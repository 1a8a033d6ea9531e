// A DnsBackend answering from records held in memory: for tests and offline use.
//
// Zone file format, one record per line ('#' starts a comment, blank lines
// are ignored; names are case-insensitive, a trailing dot is optional):
//
//   example.test  A      192.0.2.1
//   example.test  AAAA   2001:db8::1
//   example.test  MX     10 mx.example.test
//   example.test  TXT    "v=spf1 -all" "second string"    # one record, two strings
//   www.test      CNAME  example.test
//   1.2.0.192.in-addr.arpa  PTR  example.test
//   slow.test     TIMEOUT      # every query for the name answers kTimeout
//   broken.test   SERVFAIL     # ... kServFail
//   gone.test     NXDOMAIN     # explicit; same as an unknown name
//
// TXT strings are "quoted" (with \" and \\ escapes) or bare words. An
// optional "ttl=N" after the name sets that record's TTL (default 3600).
// A name with records of other types answers kNoData; an unknown name
// kNxDomain. CNAMEs are followed (up to 8 steps) for the other types.
// Every error throws ConfigError with file:line.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/dns/dns_backend.h"

namespace mxgate {

class StaticZoneBackend : public DnsBackend {
 public:
  StaticZoneBackend() = default;

  // Adds every record of a zone file. Throws ConfigError.
  void loadFile(const std::string& path);
  // Parses zone text; file names it in errors.
  void loadText(std::string_view text, const std::string& file = "<zone>");

  // For tests. value as in the file: "192.0.2.1", "10 mx.test", "\"a\" \"b\"".
  // Throws ConfigError (file "<code>") if the value is malformed.
  void addRecord(std::string_view name, std::string_view type, std::string_view value = {},
                 uint32_t ttl = kDefaultTtl);

  // Answers inline, on the calling thread.
  void query(const std::string& name, RecordType type, Callback done) override;
  DnsAnswer answer(std::string_view name, RecordType type) const;

  // Number of query() calls so far.
  uint64_t queries() const;

  static constexpr uint32_t kDefaultTtl = 3600;

 private:
  struct Record {
    RecordType type;
    std::string text;              // as DnsAnswer::records
    std::vector<std::string> txt;  // TXT strings
    uint32_t ttl;
  };
  struct Node {
    std::vector<Record> records;
    DnsStatus forced = DnsStatus::kOk;  // kTimeout / kServFail / kNxDomain
  };

  void addLine(std::string_view line, const std::string& file, uint32_t lineno);

  mutable std::mutex mu_;
  std::map<std::string, Node> names_;
  uint64_t queries_ = 0;
};

}  // namespace mxgate
