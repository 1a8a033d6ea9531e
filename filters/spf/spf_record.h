// RFC 7208 record syntax and macros, where libspf2 1.2.10 falls short.
//
// prepareRecord() checks a record against the RFC 7208 grammar (section 12)
// before libspf2 compiles it, and rewrites it into a form libspf2 evaluates
// as the RFC says: mechanisms in order, then redirect= (dropped when an
// "all" is present, RFC 7208 6.1), then exp=; unknown modifiers dropped
// (after their syntax was checked); ip4/ip6 prefix length 0, which libspf2
// cannot represent, split into two halves; "a/0" for an IPv4 client as the
// equivalent "exists".
//
// expandMacros() expands exp= explanation text (RFC 7208 7), whose
// expansion libspf2 gets wrong.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace mxgate {

// The record to give libspf2, or nullopt with *error (a permerror).
std::optional<std::string> prepareRecord(std::string_view record, bool client_v6,
                                         std::string* error);

struct MacroValues {
  std::string sender;                           // s
  std::string local_part;                       // l
  std::string sender_dom;                       // o
  std::string domain;                           // d
  std::string ip_dotted;                        // i: dotted quad, or dot-separated nibbles
  std::string ip_readable;                      // c
  std::string helo;                             // h
  std::string receiver;                         // r
  bool v6 = false;                              // v: "ip6" or "in-addr"
  std::function<std::string()> validated_name;  // p, computed on first use
};

// Expands a macro-string; nullopt if it is malformed. exp_text allows the
// c, r and t letters (RFC 7208 7.3).
std::optional<std::string> expandMacros(std::string_view text, const MacroValues& values,
                                        bool exp_text);

// RFC 7208 4.3 / 7.3: over-long names lose labels from the left until they fit.
std::string truncateDomain(std::string name);

}  // namespace mxgate
