#include "gateway/pipeline/policy.h"

namespace mxgate {

const char* actionName(Action a) {
  switch (a) {
    case Action::kAccept:
      return "accept";
    case Action::kAddHeader:
      return "add_header";
    case Action::kTagSubject:
      return "tag_subject";
    case Action::kQuarantine:
      return "quarantine";
    case Action::kDiscard:
      return "discard";
    case Action::kReject:
      return "reject";
  }
  return "?";
}

Action decideAction(const PolicyConfig& p, double score) {
  if (score >= p.reject) return Action::kReject;
  if (p.discard && score >= *p.discard) return Action::kDiscard;
  if (p.quarantine && score >= *p.quarantine) return Action::kQuarantine;
  if (score >= p.tag_subject) return Action::kTagSubject;
  if (score >= p.add_header) return Action::kAddHeader;
  return Action::kAccept;
}

}  // namespace mxgate
