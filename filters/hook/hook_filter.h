// The command hook: runs an admin's program on every message at the end of
// DATA; its exit status accepts, rejects, holds or defers the message. See
// README.md for the settings, the placeholders and etc/hook-example.sh.
#pragma once

#include "gateway/pipeline/filter.h"

namespace mxgate {

FilterFactory hookFilterFactory();

}  // namespace mxgate
