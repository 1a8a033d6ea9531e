#include "filters/dmarc/policy_record.h"

#include <gtest/gtest.h>

namespace mxgate::dmarc {
namespace {

using Status = ParsedRecord::Status;

TEST(DmarcPolicyRecord, ParsesEveryTag) {
  auto r = parsePolicyRecord(
      "v=DMARC1; p=Reject; sp=quarantine; pct=25; adkim=s; aspf=r; fo=1:d; rf=afrf; ri=3600; "
      "rua=mailto:a@example.com!10m, mailto:b@example.com; ruf=mailto:f@example.com");
  ASSERT_EQ(r.status, Status::kOk) << r.error;
  EXPECT_EQ(r.record.p, Policy::kReject);
  EXPECT_EQ(r.record.sp, Policy::kQuarantine);
  EXPECT_EQ(r.record.pct, 25);
  EXPECT_EQ(r.record.adkim, Alignment::kStrict);
  EXPECT_EQ(r.record.aspf, Alignment::kRelaxed);
  EXPECT_EQ(r.record.fo, "1:d");
  EXPECT_EQ(r.record.ri, 3600u);
  EXPECT_EQ(r.record.rua,
            (std::vector<std::string>{"mailto:a@example.com!10m", "mailto:b@example.com"}));
  EXPECT_EQ(r.record.ruf, (std::vector<std::string>{"mailto:f@example.com"}));
  EXPECT_FALSE(r.record.p_defaulted);
}

TEST(DmarcPolicyRecord, DefaultsAndSubdomainPolicy) {
  auto r = parsePolicyRecord("v=DMARC1;p=quarantine");
  ASSERT_EQ(r.status, Status::kOk);
  EXPECT_EQ(r.record.pct, 100);
  EXPECT_EQ(r.record.adkim, Alignment::kRelaxed);
  EXPECT_FALSE(r.record.sp.has_value());
  EXPECT_EQ(r.record.subdomainPolicy(), Policy::kQuarantine);
  EXPECT_EQ(parsePolicyRecord("v=DMARC1; p=reject; sp=none").record.subdomainPolicy(),
            Policy::kNone);
}

TEST(DmarcPolicyRecord, VersionMustComeFirst) {
  EXPECT_EQ(parsePolicyRecord("p=reject; v=DMARC1").status, Status::kNotDmarc);
  EXPECT_EQ(parsePolicyRecord("v=spf1 -all").status, Status::kNotDmarc);
  EXPECT_EQ(parsePolicyRecord("v=DMARC10; p=reject").status, Status::kNotDmarc);
  EXPECT_EQ(parsePolicyRecord("").status, Status::kNotDmarc);
  EXPECT_EQ(parsePolicyRecord(" v = DMARC1 ; p = reject ").status, Status::kOk);
}

TEST(DmarcPolicyRecord, SyntaxErrorsMakeTheRecordInvalid) {
  for (const char* text :
       {"v=DMARC1; p=none; bogus", "v=DMARC1; p=none; adkim=x", "v=DMARC1; p=none; pct=101",
        "v=DMARC1; p=none; pct=-1", "v=DMARC1; p=none; ri=soon", "v=DMARC1; p=none; fo=2",
        "v=DMARC1; p=none; p=reject", "v=DMARC1; p=none; 9x=1", "v=DMARC1; pct=100",
        "v=DMARC1; p=bob", "v=DMARC1; p=none; sp=bob", "v=DMARC1", "v=DMARC1; p=none; v=DMARC1"}) {
    auto r = parsePolicyRecord(text);
    EXPECT_EQ(r.status, Status::kInvalid) << text;
    EXPECT_FALSE(r.error.empty()) << text;
  }
}

TEST(DmarcPolicyRecord, BadPolicyWithReportAddressActsAsNone) {
  auto r = parsePolicyRecord("v=DMARC1; p=bob; rua=mailto:d@example.com");
  ASSERT_EQ(r.status, Status::kOk);
  EXPECT_EQ(r.record.p, Policy::kNone);
  EXPECT_TRUE(r.record.p_defaulted);
  r = parsePolicyRecord("v=DMARC1; rua=mailto:d@example.com");
  ASSERT_EQ(r.status, Status::kOk);
  EXPECT_TRUE(r.record.p_defaulted);
  // A rua that is not a URI is dropped, so it cannot rescue the record.
  EXPECT_EQ(parsePolicyRecord("v=DMARC1; p=bob; rua=d@example.com").status, Status::kInvalid);
}

TEST(DmarcPolicyRecord, LenientWhereTheRfcSaysSo) {
  auto r = parsePolicyRecord(
      "v=DMARC1; p=none; foo=bar; rf=iodef; rua=dmarc@example.com, mailto:x@example.com;");
  ASSERT_EQ(r.status, Status::kOk) << r.error;
  EXPECT_EQ(r.record.rf, std::vector<std::string>{"iodef"});
  EXPECT_EQ(r.record.rua, std::vector<std::string>{"mailto:x@example.com"});
  EXPECT_EQ(parsePolicyRecord("v=DMARC1; p=none; rf=a:b:").status, Status::kInvalid);
}

}  // namespace
}  // namespace mxgate::dmarc
