// Organizational domains (RFC 7489 3.2) and identifier alignment (3.1).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "filters/dmarc/policy_record.h"

struct psl_ctx_st;

namespace mxgate::dmarc {

// The Public Suffix List, loaded from a file so that results do not depend on
// the list compiled into libpsl. Immutable once loaded; safe to share across
// threads.
class PublicSuffixList {
 public:
  // Loads a .dat (text) or .dafsa (libpsl binary) file. Throws
  // std::runtime_error naming the path if it cannot be read or holds no rules.
  static std::shared_ptr<const PublicSuffixList> load(const std::string& path);
  ~PublicSuffixList();
  PublicSuffixList(const PublicSuffixList&) = delete;
  PublicSuffixList& operator=(const PublicSuffixList&) = delete;

  // The registrable domain (public suffix plus one label), or the domain
  // itself if it is a public suffix or shorter. REQUIRES: normalized domain
  // (see normalizeDomain).
  std::string organizationalDomain(std::string_view domain) const;

  size_t rules() const { return rules_; }

 private:
  PublicSuffixList(psl_ctx_st* ctx, size_t rules) : ctx_(ctx), rules_(rules) {}
  psl_ctx_st* ctx_;
  size_t rules_;
};

// Strict: the same domain. Relaxed: the same organizational domain.
// REQUIRES: both normalized.
bool aligned(std::string_view a, std::string_view b, Alignment mode, const PublicSuffixList& psl);

}  // namespace mxgate::dmarc
