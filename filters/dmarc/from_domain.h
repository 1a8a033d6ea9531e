// The RFC5322.From domains of a message (RFC 7489 3.1.1, 6.6.1).
//
// Each From field is parsed as an RFC 5322 mailbox-list (with the obsolete
// forms of 4.4 and the groups RFC 6854 allows). A field that does not parse
// is scanned leniently instead: the domain after every '@' outside quoted
// strings and comments counts, so that a malformed From cannot hide a
// protected domain from the check. Every distinct domain of every From field
// is returned; the filter evaluates each (6.6.1: "apply the most strict
// policy selected among the checks that fail").
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxgate::dmarc {

struct FromDomains {
  std::vector<std::string> domains;  // distinct, normalized, in order of appearance
  size_t fields = 0;                 // number of From header fields
  bool lenient = false;              // some field needed the lenient scan
};

// Domains of the addresses in one From field value (folded or not).
// *lenient is set if the value is not a valid mailbox-list.
std::vector<std::string> parseFromValue(std::string_view value, bool* lenient = nullptr);

// Every From field of the message's header section.
FromDomains fromDomains(std::string_view message);

// A domain as DMARC compares and looks it up: ASCII lowercase, one trailing
// dot removed, U-labels converted to A-labels (IDNA2008), every label 1..63
// LDH characters (or '_'), at most 253 in all. nullopt if not a domain name.
std::optional<std::string> normalizeDomain(std::string_view domain);

}  // namespace mxgate::dmarc
