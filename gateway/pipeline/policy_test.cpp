#include "gateway/pipeline/policy.h"

#include <gtest/gtest.h>

namespace mxgate {
namespace {

TEST(DecideAction, DefaultThresholds) {
  PolicyConfig p;  // add_header 5, tag_subject 8, reject 15
  EXPECT_EQ(decideAction(p, -20), Action::kAccept);
  EXPECT_EQ(decideAction(p, 0), Action::kAccept);
  EXPECT_EQ(decideAction(p, 4.99), Action::kAccept);
  EXPECT_EQ(decideAction(p, 5), Action::kAddHeader);
  EXPECT_EQ(decideAction(p, 7.99), Action::kAddHeader);
  EXPECT_EQ(decideAction(p, 8), Action::kTagSubject);
  EXPECT_EQ(decideAction(p, 14.99), Action::kTagSubject);
  EXPECT_EQ(decideAction(p, 15), Action::kReject);
  EXPECT_EQ(decideAction(p, 1000), Action::kReject);
}

TEST(DecideAction, QuarantineAndDiscardAreOptional) {
  PolicyConfig p;
  for (double score : {10.0, 12.0, 14.0})
    EXPECT_EQ(decideAction(p, score), Action::kTagSubject) << score;
  p.quarantine = 10;
  EXPECT_EQ(decideAction(p, 9.99), Action::kTagSubject);
  EXPECT_EQ(decideAction(p, 10), Action::kQuarantine);
  EXPECT_EQ(decideAction(p, 14.99), Action::kQuarantine);
  EXPECT_EQ(decideAction(p, 15), Action::kReject);
  p.discard = 12;
  EXPECT_EQ(decideAction(p, 11.99), Action::kQuarantine);
  EXPECT_EQ(decideAction(p, 12), Action::kDiscard);
  EXPECT_EQ(decideAction(p, 15), Action::kReject);
  p.quarantine.reset();
  EXPECT_EQ(decideAction(p, 11), Action::kTagSubject);
  EXPECT_EQ(decideAction(p, 12), Action::kDiscard);
}

TEST(DecideAction, MostSevereReachedThresholdWins) {
  PolicyConfig p;
  // Equal thresholds: the more severe action.
  p.add_header = 6;
  p.tag_subject = 6;
  EXPECT_EQ(decideAction(p, 6), Action::kTagSubject);
  p.quarantine = 15;
  p.discard = 15;
  EXPECT_EQ(decideAction(p, 15), Action::kReject);
  // Discard below quarantine: past the discard threshold it is discarded,
  // even where quarantine would also apply.
  p.quarantine = 12;
  p.discard = 10;
  EXPECT_EQ(decideAction(p, 11), Action::kDiscard);
  EXPECT_EQ(decideAction(p, 13), Action::kDiscard);
  EXPECT_EQ(decideAction(p, 9), Action::kTagSubject);
}

TEST(DecideAction, NegativeThresholds) {
  PolicyConfig p;
  p.add_header = -5;
  p.tag_subject = -2;
  p.reject = 0;
  EXPECT_EQ(decideAction(p, -6), Action::kAccept);
  EXPECT_EQ(decideAction(p, -5), Action::kAddHeader);
  EXPECT_EQ(decideAction(p, -1), Action::kTagSubject);
  EXPECT_EQ(decideAction(p, 0), Action::kReject);
}

TEST(ActionName, EveryAction) {
  EXPECT_STREQ(actionName(Action::kAccept), "accept");
  EXPECT_STREQ(actionName(Action::kAddHeader), "add_header");
  EXPECT_STREQ(actionName(Action::kTagSubject), "tag_subject");
  EXPECT_STREQ(actionName(Action::kQuarantine), "quarantine");
  EXPECT_STREQ(actionName(Action::kDiscard), "discard");
  EXPECT_STREQ(actionName(Action::kReject), "reject");
}

}  // namespace
}  // namespace mxgate

namespace mxgate {
namespace {

TEST(ScanResult, RequiredActionKeepsTheMostSevere) {
  ScanResult r;
  EXPECT_EQ(r.requiredAction(), Action::kAccept);
  r.requireAction(Action::kQuarantine);
  r.requireAction(Action::kAddHeader);
  EXPECT_EQ(r.requiredAction(), Action::kQuarantine);
  r.clear();
  EXPECT_EQ(r.requiredAction(), Action::kAccept);
}

}  // namespace
}  // namespace mxgate
