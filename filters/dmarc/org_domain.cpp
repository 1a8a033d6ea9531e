#include "filters/dmarc/org_domain.h"

#include <libpsl.h>

#include <stdexcept>

namespace mxgate::dmarc {

std::shared_ptr<const PublicSuffixList> PublicSuffixList::load(const std::string& path) {
  psl_ctx_t* ctx = psl_load_file(path.c_str());
  if (ctx == nullptr) throw std::runtime_error("cannot load the public suffix list " + path);
  int rules = psl_suffix_count(ctx);
  // A DAFSA file does not count its rules (-1); a text file with none is
  // not a suffix list (e.g. a wrong path to some other file).
  if (rules == 0) {
    psl_free(ctx);
    throw std::runtime_error("no public suffix rules in " + path);
  }
  return std::shared_ptr<const PublicSuffixList>(
      new PublicSuffixList(ctx, rules < 0 ? 0 : static_cast<size_t>(rules)));
}

PublicSuffixList::~PublicSuffixList() {
  psl_free(ctx_);
}

std::string PublicSuffixList::organizationalDomain(std::string_view domain) const {
  std::string d(domain);
  const char* reg = psl_registrable_domain(ctx_, d.c_str());
  return reg ? std::string(reg) : d;
}

bool aligned(std::string_view a, std::string_view b, Alignment mode, const PublicSuffixList& psl) {
  if (a == b) return true;
  if (mode == Alignment::kStrict) return false;
  return psl.organizationalDomain(a) == psl.organizationalDomain(b);
}

}  // namespace mxgate::dmarc
