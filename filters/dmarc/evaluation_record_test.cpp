#include "filters/dmarc/evaluation_record.h"

#include <gtest/gtest.h>

namespace mxgate::dmarc {
namespace {

EvaluationRecord sample() {
  EvaluationRecord r;
  r.time_ms = 1'700'000'000'123;
  r.header_from = "example.com";
  r.policy_domain = "example.com";
  r.source_ip = "192.0.2.1";
  r.helo = "mail out.example.org";  // a space must survive
  r.mail_from = "\"odd user\"@example.org";
  r.rcpt_domains = {"example.test", "other.test"};
  r.spf = {"pass", "example.org", "mfrom"};
  r.dkim = {{"pass", "example.com", "sel1"}, {"fail", "example.net", ""}};
  r.result = "fail";
  r.spf_aligned = false;
  r.dkim_aligned = true;
  r.policy = "reject";
  r.disposition = "quarantine";
  r.override_reason = "sampled_out";
  r.reason = "100% sure\nor not";
  r.published = EvaluationRecord::Published{
      "reject", "none", 50, "s", "r", "1:d", {"mailto:a@example.com", "mailto:b@example.com!10m"}};
  return r;
}

TEST(DmarcEvaluationRecord, RoundTrip) {
  EvaluationRecord r = sample();
  std::string encoded = encodeEvaluationRecord(r);
  EXPECT_EQ(encoded.rfind("v=1\ntime=1700000000123\n", 0), 0u) << encoded;
  EXPECT_NE(encoded.find("\nhelo=mail%20out.example.org\n"), std::string::npos) << encoded;
  EXPECT_NE(encoded.find("\ndkim=fail example.net \n"), std::string::npos) << encoded;
  auto back = decodeEvaluationRecord(encoded);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, r);

  EvaluationRecord bare;
  bare.time_ms = 5;
  bare.result = "permerror";
  back = decodeEvaluationRecord(encodeEvaluationRecord(bare));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, bare);
  EXPECT_FALSE(back->published.has_value());
}

TEST(DmarcEvaluationRecord, DecodesTheDocumentedFormat) {
  // As in README.md; a field unknown to this version is skipped.
  auto r = decodeEvaluationRecord(
      "v=1\ntime=1700000000000\nheader_from=example.com\npolicy_domain=example.com\n"
      "source_ip=192.0.2.1\nhelo=mx.example.org\nmail_from=b@example.org\nrcpt_domains=example."
      "test\n"
      "spf=pass example.org mfrom\ndkim=pass example.com s1\nresult=pass\nspf_aligned=fail\n"
      "dkim_aligned=pass\npolicy=reject\ndisposition=none\noverride=\nreason=\nfuture=1\n"
      "p=reject\nsp=\npct=100\nadkim=r\naspf=r\nfo=0\nrua=mailto:d%40example.com\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->dkim.size(), 1u);
  EXPECT_EQ(r->dkim[0].selector, "s1");
  EXPECT_TRUE(r->dkim_aligned);
  ASSERT_TRUE(r->published.has_value());
  EXPECT_EQ(r->published->rua, std::vector<std::string>{"mailto:d@example.com"});
}

TEST(DmarcEvaluationRecord, RejectsMalformedValues) {
  std::string good = encodeEvaluationRecord(sample());
  EXPECT_FALSE(decodeEvaluationRecord(""));
  EXPECT_FALSE(decodeEvaluationRecord("v=2\ntime=1\n"));
  EXPECT_FALSE(decodeEvaluationRecord("time=1\nv=1\n"));
  EXPECT_FALSE(decodeEvaluationRecord("v=1\n"));  // no time
  EXPECT_FALSE(decodeEvaluationRecord("v=1\ntime=x\n"));
  EXPECT_FALSE(decodeEvaluationRecord("v=1\ntime=1\nhelo=a%2\n"));  // cut escape
  EXPECT_FALSE(decodeEvaluationRecord("v=1\ntime=1\nspf=pass x\n"));
  EXPECT_FALSE(decodeEvaluationRecord("v=1\ntime=1\nspf_aligned=yes\n"));
  EXPECT_FALSE(decodeEvaluationRecord("v=1\ntime=1\nnoequals\n"));
  EXPECT_FALSE(decodeEvaluationRecord(good.substr(0, good.size() - 1)));  // no final newline
}

TEST(DmarcEvaluationRecord, KeysSortByTime) {
  EXPECT_EQ(evaluationRecordKey(1'700'000'000'123, 0xab), "1700000000123-00000000000000ab");
  EXPECT_LT(evaluationRecordKey(999, ~0ull), evaluationRecordKey(1000, 0));
}

}  // namespace
}  // namespace mxgate::dmarc
