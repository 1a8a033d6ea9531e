// Just enough reading of DKIM-Signature fields to know, before libopendkim
// runs, which keys a message needs (d= and s=) and how to name each
// signature in results. libopendkim does the authoritative parse.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mxgate::dkim {

struct SignatureRef {
  std::string domain;     // d=, lowercased; empty if absent
  std::string selector;   // s=, lowercased; empty if absent
  std::string algorithm;  // a=, lowercased
  std::string header_b;   // the first 8 characters of b= (RFC 6008)

  // "selector._domainkey.domain", or empty when d= or s= is missing.
  std::string keyName() const;
};

// Every DKIM-Signature field of the header section, in order.
std::vector<SignatureRef> findSignatures(std::string_view message);

// RFC 6376 3.2 tag-list: "t=v; t=v". Values lose all whitespace (folding
// included); tag names are lowercased. A later duplicate does not replace
// the first one (a duplicate makes the field invalid; libopendkim judges that).
std::map<std::string, std::string> parseTagList(std::string_view text);

// The domain of the one From field's address, lowercased; empty when there
// is no From field, more than one, or no domain in it.
std::string fromDomain(std::string_view message);

}  // namespace mxgate::dkim
