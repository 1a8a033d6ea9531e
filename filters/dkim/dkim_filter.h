// DKIM (RFC 6376, RFC 8463): verifies every DKIM-Signature of inbound mail
// and signs outbound mail (trusted or authenticated clients) for the
// domains it has keys for. See README.md for settings and design.
#pragma once

#include "gateway/pipeline/filter.h"

namespace mxgate {

FilterFactory dkimFilterFactory();

}  // namespace mxgate
