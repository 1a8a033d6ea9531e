// The registration list: one line per filter, in declaration order. The
// pipeline orders filters by stage and by their declared dependencies.
#include "gateway/pipeline/filter.h"

#include "filters/abuse/abuse_filter.h"
#include "filters/dkim/dkim_filter.h"
#include "filters/dmarc/dmarc_filter.h"
#include "filters/hook/hook_filter.h"
#include "filters/lists/lists_filter.h"
#include "filters/spf/spf_filter.h"

namespace mxgate {

const std::vector<FilterFactory>& filterRegistry() {
  // One line per filter.
  // clang-format off
  static const std::vector<FilterFactory> kRegistry{
      abuseFilterFactory(),
      dkimFilterFactory(),
      listsFilterFactory(),
      spfFilterFactory(),
      dmarcFilterFactory(),
      hookFilterFactory(),
  };
  // clang-format on
  return kRegistry;
}

}  // namespace mxgate
