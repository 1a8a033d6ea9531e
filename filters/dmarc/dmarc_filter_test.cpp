#include "filters/dmarc/dmarc_filter.h"

#include <gtest/gtest.h>

#include "filters/dmarc/dmarc_testing.h"
#include "gateway/config/config_error.h"
#include "gateway/smtp/message_edit.h"

namespace mxgate::dmarc {
namespace {

using Kind = StageResult::Kind;
using testing::DmarcHarness;
using Syms = std::vector<std::string>;

constexpr const char* kZone = R"(
_dmarc.reject.example      TXT "v=DMARC1; p=reject; rua=mailto:d@reject.example"
_dmarc.strict.example      TXT "v=DMARC1; p=reject; adkim=s; aspf=s"
_dmarc.quarantine.example  TXT "v=DMARC1; p=quarantine"
_dmarc.none.example        TXT "v=DMARC1; p=none"
_dmarc.half.example        TXT "v=DMARC1; p=reject; pct=50"
_dmarc.slow.example        TIMEOUT
)";

TEST(DmarcFilter, RejectsInSessionWithoutAlignedPass) {
  DmarcHarness h(kZone);
  h.from("Boss <boss@reject.example>");
  h.spfPass("sender.example");      // passes, but not aligned
  h.dkim("pass", "other.example");  // likewise
  StageResult r = h.run();
  EXPECT_EQ(r.kind, Kind::kReject);
  EXPECT_EQ(r.reply.code, 550);
  EXPECT_EQ(r.reply.enhanced, "5.7.1");
  EXPECT_NE(r.reply.text.find("reject.example"), std::string::npos);
  EXPECT_EQ(h.symbols(), Syms{"DMARC_FAIL_REJECT"});
  const DmarcOutcome& o = h.outcome();
  EXPECT_EQ(o.result, "fail");
  EXPECT_EQ(o.header_from, "reject.example");
  EXPECT_EQ(o.policy, "reject");
  EXPECT_EQ(o.disposition, "reject");
  EXPECT_NE(smtp::authenticationResults("mx.test", h.result().auth())
                .find("dmarc=fail (p=reject dis=reject) header.from=reject.example"),
            std::string::npos);
}

TEST(DmarcFilter, AlignedSpfOrDkimPasses) {
  DmarcHarness h(kZone);
  h.from("boss@reject.example");
  h.spfPass("mail.reject.example");  // relaxed: same organizational domain
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.outcome().result, "pass");
  EXPECT_EQ(h.outcome().disposition, "none");
  EXPECT_EQ(h.symbols(), Syms{"DMARC_PASS"});
  EXPECT_DOUBLE_EQ(h.result().score(), -0.5);

  h.auth = {};
  h.dkim("fail", "reject.example");
  h.dkim("pass", "Sub.Reject.Example.");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.outcome().result, "pass");
  auto recs = h.records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_TRUE(recs[0].spf_aligned);
  EXPECT_FALSE(recs[0].dkim_aligned);
  EXPECT_FALSE(recs[1].spf_aligned);
  EXPECT_TRUE(recs[1].dkim_aligned);
}

TEST(DmarcFilter, StrictAlignmentNeedsTheSameDomain) {
  DmarcHarness h(kZone);
  h.from("boss@strict.example");
  h.spfPass("mail.strict.example");
  h.dkim("pass", "sub.strict.example");
  EXPECT_EQ(h.run().kind, Kind::kReject);
  h.auth = {};
  h.dkim("pass", "strict.example");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.outcome().result, "pass");
}

TEST(DmarcFilter, QuarantineIsARequiredAction) {
  DmarcHarness h(kZone);
  h.from("boss@quarantine.example");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.result().requiredAction(), Action::kQuarantine);
  EXPECT_EQ(h.symbols(), Syms{"DMARC_FAIL_QUARANTINE"});
  EXPECT_DOUBLE_EQ(h.result().score(), 3);
  EXPECT_EQ(h.outcome().disposition, "quarantine");
}

TEST(DmarcFilter, PolicyNoneOnlyScores) {
  DmarcHarness h(kZone);
  h.from("boss@none.example");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.result().requiredAction(), Action::kAccept);
  EXPECT_EQ(h.symbols(), Syms{"DMARC_FAIL_NONE"});
  h.from("someone@nopolicy.example");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.symbols(), Syms{"DMARC_NONE"});
  EXPECT_EQ(h.outcome().result, "none");
  EXPECT_EQ(h.outcome().policy, "");
}

TEST(DmarcFilter, RejectOffQuarantinesInstead) {
  DmarcHarness h(kZone, "reject = false\n");
  h.from("boss@reject.example");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.result().requiredAction(), Action::kQuarantine);
  EXPECT_EQ(h.symbols(), Syms{"DMARC_FAIL_REJECT"});
  EXPECT_DOUBLE_EQ(h.result().score(), 5);
  auto recs = h.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].disposition, "quarantine");
  EXPECT_EQ(recs[0].override_reason, "local_policy");
}

TEST(DmarcFilter, PctSamplesDeterministically) {
  DmarcHarness h(kZone);
  h.from("boss@half.example");
  h.sample = 49;  // inside the 50%
  EXPECT_EQ(h.run().kind, Kind::kReject);
  h.sample = 50;  // outside: the next policy down (RFC 7489 6.6.4)
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.result().requiredAction(), Action::kQuarantine);
  EXPECT_EQ(h.symbols(), Syms{"DMARC_FAIL_REJECT"});
  auto recs = h.records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1].disposition, "quarantine");
  EXPECT_EQ(recs[1].override_reason, "sampled_out");
  ASSERT_TRUE(recs[1].published.has_value());
  EXPECT_EQ(recs[1].published->pct, 50);
}

TEST(DmarcFilter, LocalPolicyNetworksAreNeverRejected) {
  DmarcHarness h(kZone, "local_policy_networks = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n");
  h.from("boss@reject.example");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.result().requiredAction(), Action::kAccept);
  EXPECT_EQ(h.symbols(), Syms{"DMARC_FAIL_OVERRIDDEN"});
  EXPECT_EQ(h.outcome().result, "fail");
  EXPECT_EQ(h.outcome().disposition, "none");
  h.from("boss@quarantine.example");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.result().requiredAction(), Action::kAccept);
  auto recs = h.records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].override_reason, "local_policy");
  EXPECT_EQ(recs[0].disposition, "none");
  EXPECT_EQ(recs[0].policy, "reject");
  // Another network is judged as usual.
  h.session.client_ip = asio::ip::make_address("198.51.100.1");
  h.from("boss@reject.example");
  EXPECT_EQ(h.run().kind, Kind::kReject);
}

TEST(DmarcFilter, MailingListDomainsAreNeverRejected) {
  DmarcHarness h(kZone, "mailing_list_domains = [\"lists.example.org\"]\n");
  h.from("boss@reject.example");
  h.envelope.mail_from = "list-bounces@Lists.Example.Org";
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.symbols(), Syms{"DMARC_FAIL_OVERRIDDEN"});
  h.envelope.mail_from = "bounces@sub.lists.example.org";
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  h.envelope.mail_from = "bounces@notlists.example.org";
  EXPECT_EQ(h.run().kind, Kind::kReject);
  auto recs = h.records();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].override_reason, "mailing_list");
  EXPECT_EQ(recs[2].override_reason, "");
}

TEST(DmarcFilter, TrustedAndAuthenticatedClientsAreSkipped) {
  DmarcHarness h(kZone);
  h.from("boss@reject.example");
  h.session.trusted = true;
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  h.session.trusted = false;
  h.session.auth_user = "boss";
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_TRUE(h.symbols().empty());
  EXPECT_TRUE(h.outcome().result.empty());
  EXPECT_TRUE(h.records().empty());
  EXPECT_EQ(h.dnsQueries(), 0u);
}

TEST(DmarcFilter, MissingOrUnusableFromIsPermerror) {
  DmarcHarness h(kZone);
  h.message = "To: user@example.test\r\nSubject: no from\r\n\r\nHi\r\n";
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.outcome().result, "permerror");
  EXPECT_EQ(h.outcome().reason, "no From field");
  EXPECT_EQ(h.symbols(), Syms{"DMARC_PERMERROR"});
  h.from("undisclosed-senders:;");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.outcome().reason, "no usable domain in From");
  auto recs = h.records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].header_from, "");
  EXPECT_EQ(recs[0].result, "permerror");

  DmarcHarness strict(kZone, "reject_invalid_from = true\n");
  strict.from("nobody");
  StageResult r = strict.run();
  EXPECT_EQ(r.kind, Kind::kReject);
  EXPECT_EQ(r.reply.enhanced, "5.7.1");
  EXPECT_EQ(strict.dnsQueries(), 0u);
}

TEST(DmarcFilter, EveryFromDomainIsEvaluatedAndTheStrictestWins) {
  DmarcHarness h(kZone);
  h.message = "From: a@none.example\r\nFrom: b@quarantine.example, c@reject.example\r\n\r\nx\r\n";
  StageResult r = h.run();
  EXPECT_EQ(r.kind, Kind::kReject);
  EXPECT_EQ(h.outcome().header_from, "reject.example");
  auto recs = h.records();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].header_from, "none.example");
  EXPECT_EQ(recs[1].disposition, "quarantine");
  EXPECT_EQ(recs[2].disposition, "reject");

  DmarcHarness refuse(kZone, "reject_multiple_from_domains = true\n");
  refuse.from("a@none.example, b@none.example");  // one domain: fine
  EXPECT_EQ(refuse.run().kind, Kind::kContinue);
  refuse.from("a@none.example, b@other.example");
  EXPECT_EQ(refuse.run().kind, Kind::kReject);
}

TEST(DmarcFilter, DnsFailureIsTemperrorAndNeverRejects) {
  DmarcHarness h(kZone);
  h.from("x@slow.example");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.outcome().result, "temperror");
  EXPECT_EQ(h.symbols(), Syms{"DMARC_TEMPERROR"});
}

TEST(DmarcFilter, RecordsHoldTheWholeEvaluation) {
  DmarcHarness h(kZone);
  h.session.client_ip = asio::ip::make_address("::ffff:192.0.2.7");
  h.envelope.rcpts.push_back({"other@Example.Test", "", ""});
  h.envelope.rcpts.push_back({"x@second.test", "", ""});
  h.from("boss@sub.reject.example");
  h.auth.spf = {"softfail", "mailfrom", "sender.example", "bounce@sender.example", "", "", ""};
  h.dkim("fail", "reject.example", "sel");
  EXPECT_EQ(h.run().kind, Kind::kReject);
  h.now += std::chrono::milliseconds(1);
  EXPECT_EQ(h.run().kind, Kind::kReject);
  auto keys = h.recordKeys();
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].substr(0, 14), "1700000000000-");
  EXPECT_EQ(keys[1].substr(0, 14), "1700000000001-");
  auto r = h.records()[0];
  EXPECT_EQ(r.time_ms, 1'700'000'000'000);
  EXPECT_EQ(r.header_from, "sub.reject.example");
  EXPECT_EQ(r.policy_domain, "reject.example");  // found at the organizational domain
  EXPECT_EQ(r.source_ip, "192.0.2.7");
  EXPECT_EQ(r.helo, "mail.sender.example");
  EXPECT_EQ(r.mail_from, "bounce@sender.example");
  EXPECT_EQ(r.rcpt_domains, (std::vector<std::string>{"example.test", "second.test"}));
  EXPECT_EQ(r.spf, (EvaluationRecord::Spf{"softfail", "sender.example", "mfrom"}));
  ASSERT_EQ(r.dkim.size(), 1u);
  EXPECT_EQ(r.dkim[0], (EvaluationRecord::Dkim{"fail", "reject.example", "sel"}));
  EXPECT_EQ(r.result, "fail");
  EXPECT_FALSE(r.spf_aligned);
  EXPECT_FALSE(r.dkim_aligned);
  EXPECT_EQ(r.policy, "reject");  // no sp: p applies to subdomains
  EXPECT_EQ(r.disposition, "reject");
  ASSERT_TRUE(r.published.has_value());
  EXPECT_EQ(r.published->p, "reject");
  EXPECT_EQ(r.published->rua, std::vector<std::string>{"mailto:d@reject.example"});
}

// A store whose writes fail.
class BrokenStore : public KvStore {
 public:
  std::optional<std::string> get(std::string_view, std::string_view) override { return {}; }
  void put(std::string_view, std::string_view, std::string_view) override {
    ++puts;
    throw StoreError("disk full");
  }
  bool erase(std::string_view, std::string_view) override { return false; }
  void scan(std::string_view, std::string_view,
            const std::function<bool(std::string_view, std::string_view)>&) override {}
  int puts = 0;
};

TEST(DmarcFilter, StoreFailureDoesNotLoseTheMessage) {
  BrokenStore store;
  DmarcHarness h(kZone, "", &store);
  h.from("boss@none.example");
  h.spfPass("none.example");
  EXPECT_EQ(h.run().kind, Kind::kContinue);
  EXPECT_EQ(h.outcome().result, "pass");
  EXPECT_EQ(store.puts, 1);
  h.from("boss@reject.example");
  EXPECT_EQ(h.run().kind, Kind::kReject);
}

TEST(DmarcFilter, RecordsCanBeTurnedOff) {
  DmarcHarness h(kZone, "records = false\n");
  h.from("boss@reject.example");
  EXPECT_EQ(h.run().kind, Kind::kReject);
  EXPECT_TRUE(h.records().empty());
}

TEST(DmarcFilter, ConfigErrorsNameTheKey) {
  auto error = [](const std::string& body) -> std::string {
    try {
      DmarcHarness h(kZone, body);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(error("local_policy_networks = [\"10.0.0.0/33\"]\n").find("local_policy_networks"),
            std::string::npos);
  EXPECT_NE(error("mailing_list_domains = [\"a..b\"]\n").find("mailing_list_domains"),
            std::string::npos);
  EXPECT_NE(error("public_suffix_list = \"/nonexistent/psl.dat\"\n").find("/nonexistent/psl.dat"),
            std::string::npos);
  EXPECT_NE(error("reject = \"yes\"\n").find("reject"), std::string::npos);
  EXPECT_NE(error("rejekt = true\n").find("rejekt"), std::string::npos);
  EXPECT_EQ(error("public_suffix_list = \"/usr/share/publicsuffix/public_suffix_list.dafsa\"\n"),
            "no error");
}

TEST(DmarcFilter, IsOffUnlessEnabled) {
  FilterSpec spec = dmarcFilterFactory().spec();
  EXPECT_FALSE(spec.enabled_by_default);
  EXPECT_EQ(spec.stages, std::vector<Stage>{Stage::kData});
}

}  // namespace
}  // namespace mxgate::dmarc
