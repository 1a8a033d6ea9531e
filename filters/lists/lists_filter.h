// Local allow and deny lists for client IPs (at connect) and envelope senders
// (at MAIL). See README.md for the settings and pattern forms.
#pragma once

#include "gateway/pipeline/filter.h"

namespace mxgate {

FilterFactory listsFilterFactory();

}  // namespace mxgate
