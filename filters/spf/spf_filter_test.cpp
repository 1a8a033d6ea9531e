#include "filters/spf/spf_filter.h"

#include <chrono>
#include <sstream>

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "gateway/config/config_error.h"
#include "gateway/config/table_reader.h"
#include "gateway/dns/resolver.h"
#include "gateway/dns/static_zone.h"
#include "gateway/pipeline/symbol_table.h"
#include "gateway/pipeline/testing.h"

namespace mxgate {
namespace {

constexpr const char* kZone = R"(
pass.test     TXT  "v=spf1 ip4:192.0.2.0/24 include:inc.test -all"
inc.test      TXT  "v=spf1 ip6:2001:db8::/32 ~all"
fail.test     TXT  "v=spf1 ip4:198.51.100.1 -all exp=why.fail.test"
why.fail.test TXT  "%{i} may not send for %{d}"
soft.test     TXT  "v=spf1 ~all"
helo.test     TXT  "v=spf1 a -all"
helo.test     A    192.0.2.7
slow.test     TIMEOUT
broken.test   TXT  "v=spf1 ip4:300.1.1.1 -all"
)";

// Builds the filter from a [filters.spf] body over a static zone and runs
// the MAIL stage for one client.
class SpfHarness {
 public:
  explicit SpfHarness(const std::string& body = "", std::unique_ptr<DnsBackend> backend = nullptr,
                      ResolverOptions options = {}) {
    if (!backend) {
      auto zone = std::make_unique<StaticZoneBackend>();
      zone->loadText(kZone);
      backend = std::move(zone);
    }
    resolver_ = std::make_unique<Resolver>(std::move(backend), options);
    std::istringstream in("[filters.spf]\nreceiver = \"mx.receiver.test\"\n" + body);
    doc_ = toml::parse(in, "mxgate.toml");
    TableReader root(doc_, "");
    TableReader filters = root.getTable("filters");
    TableReader spf = filters.getTable("spf");
    FilterDeps deps;
    deps.resolver = resolver_.get();
    filter_ = spfFilterFactory().create(spf, deps);
    spf.finish();
    for (const SymbolSpec& s : spfFilterFactory().spec().symbols)
      symbols_.declare(s.name, {s.default_weight, s.description, "spf"});
  }

  StageResult mail(const std::string& ip, const std::string& helo, const std::string& from) {
    session_.client_ip = asio::ip::make_address(ip);
    session_.helo = helo;
    envelope_.mail_from = from;
    result_.clear();
    FilterContext ctx(session_, envelope_, symbols_, result_);
    ctx.setFilterName("spf");
    return testing::runCheck(*filter_, Stage::kMail, ctx);
  }

  std::string header() const {
    for (const auto& [name, value] : result_.addedHeaders())
      if (name == "Received-SPF") return value;
    return "<none>";
  }

  SessionInfo session_;
  Envelope envelope_;
  ScanResult result_;
  std::unique_ptr<Filter> filter_;

 private:
  std::unique_ptr<Resolver> resolver_;
  toml::value doc_;
  SymbolTable symbols_;
};

using Kind = StageResult::Kind;

TEST(SpfFilter, PassThroughIncludeFillsFactsSymbolAndHeader) {
  SpfHarness h;
  StageResult r = h.mail("2001:db8::25", "mail.pass.test", "alice@pass.test");
  EXPECT_EQ(r.kind, Kind::kContinue);
  ASSERT_TRUE(h.result_.has("SPF_PASS"));
  EXPECT_DOUBLE_EQ(h.result_.score(), -0.5);
  const SpfOutcome& o = h.result_.auth().spf;
  EXPECT_EQ(o.result, "pass");
  EXPECT_EQ(o.identity, "mailfrom");
  EXPECT_EQ(o.domain, "pass.test");
  EXPECT_EQ(o.mailfrom, "alice@pass.test");
  EXPECT_EQ(h.header().rfind("pass (domain of alice@pass.test designates 2001:db8::25", 0), 0u)
      << h.header();
  EXPECT_NE(h.header().find("client-ip=2001:db8::25; envelope-from=alice@pass.test; "
                            "helo=mail.pass.test; receiver=mx.receiver.test; identity=mailfrom;"),
            std::string::npos)
      << h.header();
}

TEST(SpfFilter, FailAddsSymbolAndExplanationButAcceptsByDefault) {
  SpfHarness h;
  StageResult r = h.mail("192.0.2.9", "", "bob@fail.test");
  EXPECT_EQ(r.kind, Kind::kContinue);
  EXPECT_TRUE(h.result_.has("SPF_FAIL"));
  EXPECT_DOUBLE_EQ(h.result_.score(), 5);
  EXPECT_EQ(h.result_.auth().spf.result, "fail");
  EXPECT_EQ(h.result_.auth().spf.explanation, "192.0.2.9 may not send for fail.test");
  EXPECT_EQ(h.header().rfind("fail (", 0), 0u) << h.header();
}

TEST(SpfFilter, RejectFailAnswers550WithExplanation) {
  SpfHarness h("reject_fail = true\n");
  StageResult r = h.mail("192.0.2.9", "", "bob@fail.test");
  EXPECT_EQ(r.kind, Kind::kReject);
  EXPECT_EQ(r.reply.code, 550);
  EXPECT_EQ(r.reply.enhanced, "5.7.23");
  EXPECT_EQ(r.reply.text, "SPF fail: 192.0.2.9 may not send for fail.test");
  // A pass is never rejected.
  EXPECT_EQ(h.mail("198.51.100.1", "", "bob@fail.test").kind, Kind::kContinue);
}

TEST(SpfFilter, SoftfailAndNoneAndPermerror) {
  SpfHarness h;
  h.mail("192.0.2.1", "", "x@soft.test");
  EXPECT_TRUE(h.result_.has("SPF_SOFTFAIL"));
  EXPECT_DOUBLE_EQ(h.result_.score(), 1.5);
  h.mail("192.0.2.1", "", "x@nowhere.test");
  EXPECT_TRUE(h.result_.has("SPF_NONE"));
  EXPECT_EQ(h.result_.auth().spf.result, "none");
  h.mail("192.0.2.1", "", "x@broken.test");
  EXPECT_TRUE(h.result_.has("SPF_PERMERROR"));
  EXPECT_NE(h.header().find("problem="), std::string::npos) << h.header();
}

TEST(SpfFilter, NullSenderChecksHeloIdentity) {
  SpfHarness h;
  h.mail("192.0.2.7", "helo.test", "");
  const SpfOutcome& o = h.result_.auth().spf;
  EXPECT_EQ(o.result, "pass");
  EXPECT_EQ(o.identity, "helo");
  EXPECT_EQ(o.domain, "helo.test");
  EXPECT_EQ(o.mailfrom, "postmaster@helo.test");
  EXPECT_EQ(o.helo_result, "pass");
  EXPECT_NE(h.header().find("identity=helo;"), std::string::npos) << h.header();
}

TEST(SpfFilter, SeparateHeloCheckIsRecordedAndCanBeTurnedOff) {
  SpfHarness h;
  h.mail("192.0.2.8", "helo.test", "x@soft.test");
  EXPECT_EQ(h.result_.auth().spf.result, "softfail");
  EXPECT_EQ(h.result_.auth().spf.helo_result, "fail");
  SpfHarness off("check_helo = false\n");
  off.mail("192.0.2.8", "helo.test", "x@soft.test");
  EXPECT_EQ(off.result_.auth().spf.helo_result, "");
}

TEST(SpfFilter, LoopbackClientIsJudgedLikeAnyOther) {
  SpfHarness h;
  h.mail("127.0.0.1", "", "bob@fail.test");
  EXPECT_TRUE(h.result_.has("SPF_FAIL"));
}

TEST(SpfFilter, TrustedAndAuthenticatedClientsAreSkipped) {
  SpfHarness h;
  h.session_.trusted = true;
  h.mail("192.0.2.9", "", "bob@fail.test");
  EXPECT_TRUE(h.result_.hits().empty());
  EXPECT_TRUE(h.result_.addedHeaders().empty());
  EXPECT_TRUE(h.result_.auth().spf.result.empty());
  h.session_.trusted = false;
  h.session_.auth_user = "bob";
  h.mail("192.0.2.9", "", "bob@fail.test");
  EXPECT_TRUE(h.result_.hits().empty());
  EXPECT_TRUE(h.result_.addedHeaders().empty());
}

TEST(SpfFilter, DnsTimeoutIsTemperrorSymbolOrTempfail) {
  SpfHarness h;
  EXPECT_EQ(h.mail("192.0.2.1", "", "x@slow.test").kind, Kind::kContinue);
  EXPECT_TRUE(h.result_.has("SPF_TEMPERROR"));
  EXPECT_EQ(h.result_.auth().spf.result, "temperror");
  SpfHarness t("temperror_action = \"tempfail\"\n");
  StageResult r = t.mail("192.0.2.1", "", "x@slow.test");
  EXPECT_EQ(r.kind, Kind::kTempfail);
  EXPECT_EQ(r.reply.code, 451);
  EXPECT_EQ(r.reply.enhanced, "4.7.24");
}

// A backend that never answers: only the resolver's deadline or a
// cancellation ends a lookup.
class SilentBackend : public DnsBackend {
 public:
  void query(const std::string&, RecordType, Callback) override {}
};

TEST(SpfFilter, SilentDnsEndsAtTheResolverDeadline) {
  ResolverOptions o;
  o.timeout = std::chrono::milliseconds(100);
  SpfHarness h("", std::make_unique<SilentBackend>(), o);
  auto start = std::chrono::steady_clock::now();
  h.mail("192.0.2.1", "", "x@quiet.test");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_TRUE(h.result_.has("SPF_TEMPERROR"));
}

TEST(SpfFilter, PipelineTimeoutCancelsTheCheckPromptly) {
  using namespace asio::experimental::awaitable_operators;
  ResolverOptions o;
  o.timeout = std::chrono::seconds(30);
  SpfHarness h("", std::make_unique<SilentBackend>(), o);
  h.session_.client_ip = asio::ip::make_address("192.0.2.1");
  h.envelope_.mail_from = "x@quiet.test";
  SymbolTable symbols;
  FilterContext ctx(h.session_, h.envelope_, symbols, h.result_);
  asio::io_context io;
  bool timed_out = false;
  auto start = std::chrono::steady_clock::now();
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
        auto r =
            co_await (h.filter_->check(Stage::kMail, ctx) || timer.async_wait(asio::use_awaitable));
        timed_out = r.index() == 1;
        // The session resumes at once, and the abandoned lookups end too.
        EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run();
  EXPECT_TRUE(timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(SpfFilter, BadTemperrorActionIsAConfigError) {
  EXPECT_THROW(SpfHarness("temperror_action = \"drop\"\n"), ConfigError);
}

}  // namespace
}  // namespace mxgate
