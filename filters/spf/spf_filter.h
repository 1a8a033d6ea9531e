// SPF (RFC 7208) check of the MAIL FROM and HELO identities at MAIL. See
// README.md for the settings, symbols and headers.
#pragma once

#include <string>

#include "filters/spf/spf_eval.h"
#include "gateway/pipeline/filter.h"

namespace mxgate {

FilterFactory spfFilterFactory();

// The Received-SPF field value (RFC 7208 9.1) for a verdict.
std::string receivedSpfValue(const SpfVerdict& v, const SpfRequest& req, bool helo_identity);

}  // namespace mxgate
