#include "filters/spf/spf_filter.h"

#include <unistd.h>

#include <climits>
#include <utility>

#include "gateway/config/table_reader.h"
#include "gateway/dns/resolver.h"
#include "gateway/util/strings.h"

namespace mxgate {
namespace {

enum class TemperrorAction { kSymbol, kTempfail };

struct SpfConfig {
  bool check_helo = true;
  bool reject_fail = false;
  TemperrorAction temperror = TemperrorAction::kSymbol;
  std::string receiver;
};

std::string hostName() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string symbolFor(SpfResult r) {
  std::string s = "SPF_";
  for (char c : spfResultName(r)) s += static_cast<char>(c - 'a' + 'A');
  return s;
}

// A HELO name worth checking (RFC 7208 2.3): a domain, not an address literal.
bool checkableHelo(std::string_view helo) {
  return !helo.empty() && helo.front() != '[' && helo.find('.') != std::string_view::npos;
}

// Header-safe text: printable ASCII, no parentheses or backslashes (it goes
// into a comment), at most max characters.
std::string commentText(std::string_view s, size_t max = 200) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) break;
    if (c < 0x20 || c > 0x7e || c == '(' || c == ')' || c == '\\') c = ' ';
    out += c;
  }
  return out;
}

// A key-value-pair value: a dot-atom as is, anything else quoted.
std::string kvValue(std::string_view s) {
  bool atom = !s.empty();
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-/=?^_`{|}~.:@").find(c) != std::string_view::npos;
    if (!ok) atom = false;
  }
  if (atom) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

class SpfFilter final : public Filter {
 public:
  SpfFilter(SpfConfig config, Resolver* resolver)
      : config_(std::move(config)), resolver_(resolver) {}

  asio::awaitable<StageResult> check(Stage, FilterContext& ctx) override {
    const SessionInfo& s = ctx.session();
    // Our own and authenticated clients are not judged by the sender's
    // published policy.
    if (s.trusted || !s.auth_user.empty() || !resolver_) co_return StageResult::next();
    SpfRequest req;
    req.client_ip = s.client_ip;
    req.helo = s.helo;
    req.mail_from = ctx.envelope().mail_from;
    req.receiver = config_.receiver;
    const bool helo_identity = req.mail_from.empty();
    if (helo_identity && !checkableHelo(req.helo)) co_return StageResult::next();

    SpfVerdict v = co_await evaluateSpf(*resolver_, req);
    std::string helo_result;
    if (helo_identity) {
      helo_result = spfResultName(v.result);
    } else if (config_.check_helo && checkableHelo(req.helo)) {
      SpfRequest h = req;
      h.mail_from.clear();
      helo_result = spfResultName((co_await evaluateSpf(*resolver_, h)).result);
    }

    SpfOutcome& out = ctx.auth().spf;
    out.result = spfResultName(v.result);
    out.identity = helo_identity ? "helo" : "mailfrom";
    out.domain = v.domain;
    out.mailfrom = v.sender;
    out.helo_result = helo_result;
    out.explanation = v.explanation;
    out.reason = commentText(v.comment);

    std::string detail = v.domain;
    if (!v.problem.empty()) detail += ": " + v.problem;
    ctx.addSymbol(symbolFor(v.result), detail);
    ctx.addHeader("Received-SPF", receivedSpfValue(v, req, helo_identity));

    if (v.result == SpfResult::kFail && config_.reject_fail) {
      // RFC 7372 3.2: 5.7.23 for an SPF fail, with the domain's explanation.
      std::string text = v.explanation.empty() ? v.comment : v.explanation;
      co_return StageResult::reject(550, "5.7.23", "SPF fail: " + commentText(text));
    }
    if (v.result == SpfResult::kTemperror && config_.temperror == TemperrorAction::kTempfail)
      co_return StageResult::tempfail(451, "4.7.24",
                                      "SPF temporary error: " + commentText(v.problem));
    co_return StageResult::next();
  }

 private:
  const SpfConfig config_;
  Resolver* const resolver_;
};

FilterSpec spfSpec() {
  FilterSpec spec;
  spec.name = "spf";
  spec.stages = {Stage::kMail};
  spec.symbols = {
      {"SPF_PASS", -0.5, "the client is a permitted sender of the domain"},
      {"SPF_FAIL", 5, "the domain says the client may not send for it"},
      {"SPF_SOFTFAIL", 1.5, "the domain says the client is probably not its sender"},
      {"SPF_NEUTRAL", 0, "the domain makes no assertion about the client"},
      {"SPF_NONE", 0, "the domain publishes no SPF record"},
      {"SPF_PERMERROR", 0, "the domain's SPF record is broken"},
      {"SPF_TEMPERROR", 0, "a DNS error kept SPF from being checked"},
  };
  // An allow-listed sender needs no SPF verdict first; lists runs at MAIL too.
  spec.after = {"lists"};
  // DNS answers take several rounds for includes; each lookup has its own
  // deadline (dns.timeout).
  spec.timeout = std::chrono::seconds(20);
  spec.fail_mode = FailMode::kSkip;
  spec.fail_symbol = "SPF_TEMPERROR";
  // SPF needs real DNS: on only where [filters.spf] says enabled = true.
  spec.enabled_by_default = false;
  return spec;
}

std::unique_ptr<Filter> createSpf(TableReader& config, const FilterDeps& deps) {
  SpfConfig c;
  c.check_helo = config.getBool("check_helo", true);
  c.reject_fail = config.getBool("reject_fail", false);
  std::string t = config.getString("temperror_action", "symbol");
  if (t == "symbol")
    c.temperror = TemperrorAction::kSymbol;
  else if (t == "tempfail")
    c.temperror = TemperrorAction::kTempfail;
  else
    config.fail("temperror_action", "must be \"symbol\" or \"tempfail\", not \"" + t + "\"");
  c.receiver = config.getString("receiver", "");
  if (c.receiver.empty()) c.receiver = hostName();
  return std::make_unique<SpfFilter>(std::move(c), deps.resolver);
}

}  // namespace

std::string receivedSpfValue(const SpfVerdict& v, const SpfRequest& req, bool helo_identity) {
  asio::ip::address ip = req.client_ip;
  if (ip.is_v6() && ip.to_v6().is_v4_mapped())
    ip = asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
  std::string h = std::string(spfResultName(v.result)) + " (" + commentText(v.comment) + ")";
  h += " client-ip=" + ip.to_string() + ";";
  h += " envelope-from=" + kvValue(v.sender) + ";";
  if (!req.helo.empty()) h += " helo=" + kvValue(req.helo) + ";";
  h += " receiver=" + kvValue(req.receiver) + ";";
  h += std::string(" identity=") + (helo_identity ? "helo" : "mailfrom") + ";";
  if (!v.mechanism.empty()) h += " mechanism=" + kvValue(v.mechanism) + ";";
  if (!v.problem.empty()) h += " problem=" + kvValue(commentText(v.problem)) + ";";
  return h;
}

FilterFactory spfFilterFactory() {
  return {spfSpec, createSpf};
}

}  // namespace mxgate
