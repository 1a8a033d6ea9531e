// The policy step: one place where a message's total score becomes an action.
#pragma once

#include "gateway/config/config.h"

namespace mxgate {

// Ordered by severity; the most severe threshold reached wins.
enum class Action { kAccept, kAddHeader, kTagSubject, kQuarantine, kDiscard, kReject };

const char* actionName(Action a);
Action decideAction(const PolicyConfig& policy, double score);

}  // namespace mxgate
