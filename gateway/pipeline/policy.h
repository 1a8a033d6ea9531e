// The policy step: one place where a message's total score becomes an action.
#pragma once

#include "gateway/config/config.h"
#include "gateway/pipeline/types.h"

namespace mxgate {

const char* actionName(Action a);
Action decideAction(const PolicyConfig& policy, double score);

}  // namespace mxgate
