#include "filters/spf/spf_eval.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

extern "C" {
#include <spf2/spf.h>
}

#include "filters/spf/spf_record.h"
#include "gateway/dns/resolver.h"
#include "gateway/util/strings.h"

namespace mxgate {
namespace {

using Question = std::pair<std::string, RecordType>;
using Answers = std::map<Question, DnsAnswer>;

// Used when the record has no usable exp= (RFC 7208 6.2 leaves it local).
constexpr const char* kDefaultExplanation = "%{i} is not a permitted sender for %{d}";
// What libspf2 is told its default is, so we can tell it apart and expand
// ours (libspf2's own expansion of explanation text is broken).
constexpr const char* kDefaultMarker = "mxgate.default.explanation";
constexpr int kMaxPtrNames = 10;  // RFC 7208 4.6.4: the rest are ignored

void libspf2Log(const char* file, int line, const char* msg) {
  spdlog::debug("spf: libspf2: {}", msg);
}

void quietLibspf2() {
  static std::once_flag once;
  std::call_once(once, [] {
    // libspf2 prints warnings and info to stderr by default.
    SPF_warning_handler = libspf2Log;
    SPF_info_handler = libspf2Log;
    SPF_debug_handler = libspf2Log;
  });
}

// RFC 1035 limits; a name beyond them can exist in no DNS answer.
bool plausibleName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    size_t len = (dot == std::string_view::npos ? name.size() : dot) - start;
    if (len == 0 || len > 63) return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

std::optional<RecordType> recordType(ns_type t) {
  switch (t) {
    case ns_t_a:
      return RecordType::kA;
    case ns_t_aaaa:
      return RecordType::kAaaa;
    case ns_t_mx:
      return RecordType::kMx;
    case ns_t_ptr:
      return RecordType::kPtr;
    case ns_t_txt:
      return RecordType::kTxt;
    default:
      return std::nullopt;
  }
}

bool isVoid(const DnsAnswer& a) {
  return a.status == DnsStatus::kNxDomain || a.status == DnsStatus::kNoData ||
         (a.status == DnsStatus::kOk && a.records.empty());
}

// The 'v=spf1' version tag, followed by a space or the end (RFC 7208 4.5).
bool isSpfRecord(std::string_view txt) {
  constexpr std::string_view kTag = "v=spf1";
  return txt.size() >= kTag.size() && iequals(txt.substr(0, kTag.size()), kTag) &&
         (txt.size() == kTag.size() || txt[kTag.size()] == ' ');
}

// One synchronous libspf2 evaluation over the answers known so far.
class Pass {
 public:
  Pass(Answers& known, Resolver& resolver, const SpfLimits& limits)
      : known_(known), resolver_(resolver), limits_(limits) {
    dns_.lookup = &Pass::lookupHook;
    dns_.get_spf = &Pass::getSpfHook;
    dns_.get_exp = &Pass::getExpHook;
    dns_.name = "mxgate";
    dns_.hook = this;
    // destroy stays null: SPF_server_free then leaves dns_ (ours) alone.
    server_ = SPF_server_new_dns(&dns_, 0);
    // libspf2 counts DNS terms per included record; the count here spans
    // the whole evaluation (see lookup()), so libspf2's own is set out of reach.
    SPF_server_set_max_dns_mech(server_, 1000);
    SPF_server_set_max_dns_mx(server_, 10);
    SPF_server_set_max_dns_ptr(server_, kMaxPtrNames);
    SPF_response_t* scratch = nullptr;
    SPF_server_set_explanation(server_, kDefaultMarker, &scratch);
    if (scratch) SPF_response_free(scratch);
  }
  ~Pass() { SPF_server_free(server_); }
  Pass(const Pass&) = delete;
  Pass& operator=(const Pass&) = delete;

  SpfVerdict run(const SpfRequest& req);
  const std::set<Question>& misses() const { return misses_; }

 private:
  static SPF_dns_rr_t* lookupHook(SPF_dns_server_t* dns, const char* domain, ns_type type, int) {
    return static_cast<Pass*>(dns->hook)->lookup(domain, type);
  }
  static SPF_errcode_t getSpfHook(SPF_server_t* server, SPF_request_t* req, SPF_response_t* resp,
                                  SPF_record_t** record) {
    return static_cast<Pass*>(server->resolver->hook)->getSpf(req, resp, record);
  }
  static SPF_errcode_t getExpHook(SPF_server_t* server, const char* domain, char** buf,
                                  size_t* len) {
    return static_cast<Pass*>(server->resolver->hook)->getExp(domain, buf, len);
  }

  // The answer for (name, type) if known, else nullptr (and a miss is noted).
  const DnsAnswer* find(const std::string& name, RecordType type);
  SPF_dns_rr_t* lookup(const char* domain, ns_type type);
  SPF_errcode_t getSpf(SPF_request_t* req, SPF_response_t* resp, SPF_record_t** record);
  SPF_errcode_t getExp(const char* domain, char** buf, size_t* len);
  MacroValues macroValues(const std::string& domain);
  // %{p} (RFC 7208 7.3): a validated name of the client, preferring domain.
  std::string validatedName(const std::string& domain);
  // Counts a DNS-querying term; false once past the limit.
  bool countTerm();

  Answers& known_;
  Resolver& resolver_;
  const SpfLimits& limits_;
  SPF_dns_server_t dns_{};
  SPF_server_t* server_ = nullptr;
  std::set<Question> misses_;
  int voids_ = 0;
  int records_ = 0;  // SPF records fetched: the top one, then include/redirect
  int terms_ = 0;    // DNS-querying terms evaluated (RFC 7208 4.6.4)
  bool over_limit_ = false;
  bool in_exp_ = false;  // lookups for exp= count toward no limit
  // Targets of the last MX or PTR answer: their address lookups belong to
  // that term, not to a new one.
  std::set<std::string> sub_names_;
  bool sub_of_ptr_ = false;
  const SpfRequest* req_ = nullptr;
  SPF_request_t* sr_ = nullptr;
  // Set by getSpf for the top-level record, which SPF_i_done cannot report.
  SpfResult top_result_ = SpfResult::kNone;
  std::string top_problem_;
};

const DnsAnswer* Pass::find(const std::string& name, RecordType type) {
  Question q{name, type};
  if (auto it = known_.find(q); it != known_.end()) return &it->second;
  DnsAnswer a;
  if (resolver_.cached(name, type, &a))
    return &known_.emplace(std::move(q), std::move(a)).first->second;
  misses_.insert(std::move(q));
  return nullptr;
}

bool Pass::countTerm() {
  if (++terms_ > limits_.dns_terms) over_limit_ = true;
  return !over_limit_;
}

SPF_dns_rr_t* Pass::lookup(const char* domain, ns_type type) {
  std::string name = truncateDomain(normalizeDnsName(domain));
  auto rt = recordType(type);
  // Type SPF (99) is obsolete (RFC 7208 3.1): never asked, answered "no data".
  if (!rt || !plausibleName(name)) {
    return SPF_dns_rr_new_init(&dns_, domain, type, 0, rt ? HOST_NOT_FOUND : NO_DATA);
  }
  bool sub = false;
  if (!in_exp_ && *rt != RecordType::kTxt) {
    sub = (*rt == RecordType::kA || *rt == RecordType::kAaaa) && sub_names_.count(name) > 0;
    if (!sub) {
      sub_names_.clear();
      if (!countTerm()) return SPF_dns_rr_new_init(&dns_, domain, type, 0, TRY_AGAIN);
    }
  }
  const DnsAnswer* a = find(name, *rt);
  if (!a) return SPF_dns_rr_new_init(&dns_, domain, type, 0, TRY_AGAIN);
  // Void lookups (RFC 7208 4.6.4) are those of the a, mx, ptr and exists
  // terms; exp= (TXT) does not count, include/redirect fail on their own.
  if (!in_exp_ && !sub && *rt != RecordType::kTxt && isVoid(*a)) ++voids_;
  int herrno = NETDB_SUCCESS;
  switch (a->status) {
    case DnsStatus::kOk:
      break;
    case DnsStatus::kNxDomain:
      herrno = HOST_NOT_FOUND;
      break;
    case DnsStatus::kNoData:
      herrno = NO_DATA;
      break;
    default:
      // RFC 7208 5.5: an error looking up a PTR name's address skips that name.
      herrno = sub && sub_of_ptr_ ? NO_DATA : TRY_AGAIN;
      break;
  }
  SPF_dns_rr_t* rr = SPF_dns_rr_new_init(&dns_, domain, type, static_cast<int>(a->ttl), herrno);
  if (!rr || herrno != NETDB_SUCCESS) return rr;
  int n = 0;
  for (const std::string& rec : a->records) {
    if (*rt == RecordType::kPtr && n == kMaxPtrNames) break;
    if (*rt == RecordType::kA || *rt == RecordType::kAaaa) {
      size_t len = *rt == RecordType::kA ? sizeof(in_addr) : sizeof(in6_addr);
      if (SPF_dns_rr_buf_realloc(rr, n, len) != SPF_E_SUCCESS) break;
      if (inet_pton(*rt == RecordType::kA ? AF_INET : AF_INET6, rec.c_str(), rr->rr[n]) != 1)
        continue;
    } else {
      std::string_view text = rec;
      if (*rt == RecordType::kMx) {  // "pref host"
        size_t sp = text.find(' ');
        text = sp == std::string_view::npos ? std::string_view() : text.substr(sp + 1);
      }
      if (!in_exp_ && (*rt == RecordType::kMx || *rt == RecordType::kPtr)) {
        sub_names_.insert(normalizeDnsName(text));
        sub_of_ptr_ = *rt == RecordType::kPtr;
      }
      if (SPF_dns_rr_buf_realloc(rr, n, text.size() + 1) != SPF_E_SUCCESS) break;
      std::memcpy(rr->rr[n], text.data(), text.size());
      reinterpret_cast<char*>(rr->rr[n])[text.size()] = '\0';
    }
    ++n;
  }
  rr->num_rr = n;
  if (n == 0) rr->herrno = NO_DATA;
  return rr;
}

std::string reverseName(const asio::ip::address& ip) {
  std::string out;
  if (ip.is_v4()) {
    auto b = ip.to_v4().to_bytes();
    for (int i = 3; i >= 0; --i) out += std::to_string(b[i]) + ".";
    return out + "in-addr.arpa";
  }
  static const char* kHex = "0123456789abcdef";
  auto b = ip.to_v6().to_bytes();
  for (int i = 15; i >= 0; --i) {
    out += kHex[b[i] & 15];
    out += '.';
    out += kHex[b[i] >> 4];
    out += '.';
  }
  return out + "ip6.arpa";
}

// %{i}: the dotted quad, or the 32 nibbles of an IPv6 address dot-separated.
std::string dottedIp(const asio::ip::address& ip) {
  if (ip.is_v4()) return ip.to_string();
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char byte : ip.to_v6().to_bytes()) {
    if (!out.empty()) out += '.';
    out += kHex[byte >> 4];
    out += '.';
    out += kHex[byte & 15];
  }
  return out;
}

asio::ip::address plainIp(const asio::ip::address& ip) {
  if (ip.is_v6() && ip.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
  return ip;
}

std::string Pass::validatedName(const std::string& domain) {
  asio::ip::address ip = plainIp(req_->client_ip);
  const DnsAnswer* ptr = find(reverseName(ip), RecordType::kPtr);
  if (!ptr || !ptr->ok()) return "unknown";
  std::string first;
  int n = 0;
  for (const std::string& name : ptr->records) {
    if (++n > kMaxPtrNames) break;
    const DnsAnswer* a =
        find(normalizeDnsName(name), ip.is_v4() ? RecordType::kA : RecordType::kAaaa);
    if (!a || !a->ok()) continue;
    bool match = false;
    for (const std::string& addr : a->records) {
      std::error_code ec;
      auto x = asio::ip::make_address(addr, ec);
      if (!ec && x == ip) match = true;
    }
    if (!match) continue;
    std::string lname = normalizeDnsName(name);
    std::string ldom = normalizeDnsName(domain);
    if (lname == ldom || (lname.size() > ldom.size() &&
                          lname.compare(lname.size() - ldom.size(), ldom.size(), ldom) == 0 &&
                          lname[lname.size() - ldom.size() - 1] == '.'))
      return lname;
    if (first.empty()) first = lname;
  }
  return first.empty() ? "unknown" : first;
}

MacroValues Pass::macroValues(const std::string& domain) {
  MacroValues m;
  asio::ip::address ip = plainIp(req_->client_ip);
  m.sender = sr_->env_from ? sr_->env_from : "";
  m.local_part = sr_->env_from_lp ? sr_->env_from_lp : "";
  m.sender_dom = sr_->env_from_dp ? sr_->env_from_dp : "";
  m.domain = domain;
  m.ip_dotted = dottedIp(ip);
  m.ip_readable = ip.to_string();
  m.helo = req_->helo;
  m.receiver = req_->receiver;
  m.v6 = ip.is_v6();
  m.validated_name = [this, domain] { return validatedName(domain); };
  return m;
}

// exp= (RFC 7208 6.2): one TXT record, macro-expanded; anything else and
// the default explanation is used.
SPF_errcode_t Pass::getExp(const char* domain, char** buf, size_t* len) {
  in_exp_ = true;
  std::string text = kDefaultMarker;
  std::string name = truncateDomain(normalizeDnsName(domain));
  if (plausibleName(name)) {
    const DnsAnswer* a = find(name, RecordType::kTxt);
    if (a && a->ok() && a->records.size() == 1) {
      std::string cur = sr_->cur_dom ? sr_->cur_dom : "";
      if (auto e = expandMacros(a->records[0], macroValues(cur), true)) text = *e;
    }
  }
  in_exp_ = false;
  if (*len < text.size() + 1) {
    char* p = static_cast<char*>(std::realloc(*buf, text.size() + 1));
    if (!p) return SPF_E_NO_MEMORY;
    *buf = p;
    *len = text.size() + 1;
  }
  std::memcpy(*buf, text.c_str(), text.size() + 1);
  return SPF_E_SUCCESS;
}

// Record lookup and selection (RFC 7208 4.4, 4.5) for the checked domain and
// for include/redirect targets: TXT only, one record starting "v=spf1".
SPF_errcode_t Pass::getSpf(SPF_request_t* req, SPF_response_t* resp, SPF_record_t** record) {
  const bool top = records_++ == 0;
  std::string domain = req->cur_dom ? req->cur_dom : "";
  sub_names_.clear();
  auto fail = [&](SpfResult r, SPF_errcode_t err, std::string why) {
    if (top) {
      top_result_ = r;
      top_problem_ = why;
    }
    SPF_response_add_error(resp, err, "%s", why.c_str());
    return err;
  };
  if (!top && !countTerm())
    return fail(SpfResult::kPermerror, SPF_E_BIG_DNS, "too many DNS-querying terms");
  std::string name = truncateDomain(normalizeDnsName(domain));
  if (!plausibleName(name))
    return fail(SpfResult::kNone, SPF_E_NOT_SPF, "invalid domain name '" + domain + "'");
  const DnsAnswer* a = find(name, RecordType::kTxt);
  if (!a) return fail(SpfResult::kTemperror, SPF_E_DNS_ERROR, "lookup pending");
  switch (a->status) {
    case DnsStatus::kOk:
      break;
    case DnsStatus::kNxDomain:
    case DnsStatus::kNoData:
      return fail(SpfResult::kNone, SPF_E_NOT_SPF, "no SPF record for " + name);
    default:
      return fail(SpfResult::kTemperror, SPF_E_DNS_ERROR,
                  "DNS " + std::string(dnsStatusName(a->status)) + " looking up " + name);
  }
  const std::string* found = nullptr;
  for (const std::string& txt : a->records) {
    if (!isSpfRecord(txt)) continue;
    if (found)
      return fail(SpfResult::kPermerror, SPF_E_MULTIPLE_RECORDS,
                  "multiple SPF records for " + name);
    found = &txt;
  }
  if (!found) return fail(SpfResult::kNone, SPF_E_NOT_SPF, "no SPF record for " + name);
  std::string why;
  std::optional<std::string> text = prepareRecord(*found, plainIp(req_->client_ip).is_v6(), &why);
  if (!text)
    return fail(SpfResult::kPermerror, SPF_E_SYNTAX, "bad SPF record for " + name + ": " + why);
  SPF_errcode_t err = SPF_record_compile(server_, resp, record, text->c_str());
  if (err != SPF_E_SUCCESS) {
    if (*record) {
      SPF_record_free(*record);
      *record = nullptr;
    }
    return fail(SpfResult::kPermerror, err,
                "bad SPF record for " + name + ": " + SPF_strerror(err));
  }
  return SPF_E_SUCCESS;
}

SpfResult fromLibspf2(SPF_result_t r) {
  switch (r) {
    case SPF_RESULT_PASS:
      return SpfResult::kPass;
    case SPF_RESULT_FAIL:
      return SpfResult::kFail;
    case SPF_RESULT_SOFTFAIL:
      return SpfResult::kSoftfail;
    case SPF_RESULT_NEUTRAL:
      return SpfResult::kNeutral;
    case SPF_RESULT_NONE:
      return SpfResult::kNone;
    case SPF_RESULT_TEMPERROR:
      return SpfResult::kTemperror;
    default:
      return SpfResult::kPermerror;
  }
}

// The first error message libspf2 recorded, for problem=.
std::string firstError(SPF_response_t* resp) {
  for (int i = 0; i < SPF_response_messages(resp); ++i) {
    SPF_error_t* e = SPF_response_message(resp, i);
    if (e && e->is_error && e->message) return e->message;
  }
  return SPF_strerror(SPF_response_errcode(resp));
}

SpfVerdict Pass::run(const SpfRequest& req) {
  SpfVerdict v;
  std::unique_ptr<SPF_request_t, void (*)(SPF_request_t*)> sr(SPF_request_new(server_),
                                                              SPF_request_free);
  req_ = &req;
  sr_ = sr.get();
  SPF_server_set_rec_dom(server_, req.receiver.empty() ? "unknown" : req.receiver.c_str());
  asio::ip::address ip = plainIp(req.client_ip);
  if (ip.is_v4()) {
    in_addr a;
    auto bytes = ip.to_v4().to_bytes();
    std::memcpy(&a, bytes.data(), sizeof a);
    SPF_request_set_ipv4(sr.get(), a);
  } else {
    in6_addr a;
    auto bytes = ip.to_v6().to_bytes();
    std::memcpy(&a, bytes.data(), sizeof a);
    SPF_request_set_ipv6(sr.get(), a);
  }
  SPF_request_set_helo_dom(sr.get(), req.helo.c_str());
  // An empty MAIL FROM makes libspf2 use postmaster@<helo>; a local part
  // alone ("@" missing) is postmaster@<domain> (RFC 7208 4.3).
  SPF_request_set_env_from(sr.get(), req.mail_from.c_str());
  v.sender = sr->env_from ? sr->env_from : "";
  v.domain = sr->env_from_dp ? sr->env_from_dp : "";
  sr->cur_dom = sr->env_from_dp;
  if (!sr->cur_dom || !*sr->cur_dom) {
    v.result = SpfResult::kNone;
    v.problem = "no domain to check";
    return v;
  }

  // SPF_request_query_mailfrom() without its "localhost always passes"
  // shortcut: a gateway must judge loopback clients like any other.
  std::unique_ptr<SPF_response_t, void (*)(SPF_response_t*)> resp(SPF_response_new(sr.get()),
                                                                  SPF_response_free);
  SPF_record_t* record = nullptr;
  SPF_errcode_t err = SPF_server_get_record(server_, sr.get(), resp.get(), &record);
  if (err != SPF_E_SUCCESS) {
    if (record) SPF_record_free(record);
    v.result = top_result_;
    v.problem = top_problem_;
  } else {
    resp->spf_record_exp = record;
    SPF_record_interpret(record, sr.get(), resp.get(), 0);
    SPF_record_free(record);
    resp->spf_record_exp = nullptr;
    v.result = fromLibspf2(SPF_response_result(resp.get()));
    if (v.result == SpfResult::kPermerror || v.result == SpfResult::kTemperror)
      v.problem = firstError(resp.get());
    if (SPF_response_reason(resp.get()) == SPF_REASON_DEFAULT) v.mechanism = "default";
    if (v.result == SpfResult::kFail && SPF_response_get_explanation(resp.get()))
      v.explanation = SPF_response_get_explanation(resp.get());
    if (v.explanation == kDefaultMarker) {
      in_exp_ = true;
      v.explanation = expandMacros(kDefaultExplanation, macroValues(v.domain), true).value_or("");
      in_exp_ = false;
    }
  }
  if (over_limit_) {
    v.result = SpfResult::kPermerror;
    v.problem = "more than " + std::to_string(limits_.dns_terms) + " DNS-querying terms";
    v.mechanism.clear();
    v.explanation.clear();
  }
  if (!over_limit_ && voids_ > limits_.void_lookups && v.result != SpfResult::kTemperror) {
    // libspf2 has no void-lookup limit; the lookups it made happened before
    // its result, so the limit was crossed first.
    v.result = SpfResult::kPermerror;
    v.problem = "more than " + std::to_string(limits_.void_lookups) + " void DNS lookups";
    v.mechanism.clear();
    v.explanation.clear();
  }
  return v;
}

std::string ipText(const asio::ip::address& ip) {
  if (ip.is_v6() && ip.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6()).to_string();
  return ip.to_string();
}

std::string commentFor(const SpfVerdict& v, const SpfRequest& req) {
  std::string ip = ipText(req.client_ip);
  std::string dom = "domain of " + v.sender;
  switch (v.result) {
    case SpfResult::kPass:
      return dom + " designates " + ip + " as permitted sender";
    case SpfResult::kFail:
      return dom + " does not designate " + ip + " as permitted sender";
    case SpfResult::kSoftfail:
      return "transitioning " + dom + " does not designate " + ip + " as permitted sender";
    case SpfResult::kNeutral:
      return ip + " is neither permitted nor denied by " + dom;
    case SpfResult::kNone:
      return dom + " does not provide an SPF record";
    case SpfResult::kTemperror:
      return "temporary error checking " + dom + ": " + v.problem;
    case SpfResult::kPermerror:
      return "permanent error in the SPF record of " + dom + ": " + v.problem;
  }
  return {};
}

// Resolves every question concurrently on the caller's executor (one event
// loop thread, so the batch needs no lock). The lookups share the batch, so a
// cancelled caller leaves nothing dangling, and they are cancelled with it.
asio::awaitable<void> resolveAll(Resolver& resolver, const std::set<Question>& questions,
                                 Answers& known) {
  struct Batch {
    explicit Batch(asio::any_io_executor ex) : done(ex) {}
    asio::steady_timer done;  // a signal: cancelled by the last lookup
    size_t pending = 0;
    std::vector<std::pair<Question, DnsAnswer>> answers;
    std::list<asio::cancellation_signal> stops;
  };
  auto ex = co_await asio::this_coro::executor;
  auto batch = std::make_shared<Batch>(ex);
  batch->done.expires_at(asio::steady_timer::time_point::max());
  batch->pending = questions.size();
  for (const Question& q : questions) {
    asio::co_spawn(
        ex,
        [&resolver, q, batch]() -> asio::awaitable<void> {
          DnsAnswer a = co_await resolver.lookup(q.first, q.second);
          batch->answers.emplace_back(q, std::move(a));
          if (--batch->pending == 0) batch->done.cancel();
        },
        asio::bind_cancellation_slot(batch->stops.emplace_back().slot(), asio::detached));
  }
  // The lookups start only once this coroutine suspends, so none has
  // finished yet and the signal cannot be missed.
  std::error_code ec;
  co_await batch->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (batch->pending > 0) {
    // This coroutine was cancelled (the filter timeout): stop the lookups.
    for (auto& stop : batch->stops) stop.emit(asio::cancellation_type::terminal);
    throw std::system_error(asio::error::operation_aborted);
  }
  for (auto& [q, a] : batch->answers) known.insert_or_assign(q, std::move(a));
}

}  // namespace

std::string_view spfResultName(SpfResult r) {
  switch (r) {
    case SpfResult::kNone:
      return "none";
    case SpfResult::kNeutral:
      return "neutral";
    case SpfResult::kPass:
      return "pass";
    case SpfResult::kFail:
      return "fail";
    case SpfResult::kSoftfail:
      return "softfail";
    case SpfResult::kTemperror:
      return "temperror";
    case SpfResult::kPermerror:
      return "permerror";
  }
  return "none";
}

asio::awaitable<SpfVerdict> evaluateSpf(Resolver& resolver, SpfRequest request, SpfLimits limits) {
  quietLibspf2();
  Answers known;
  for (int pass = 1;; ++pass) {
    SpfVerdict v;
    std::set<Question> misses;
    {
      Pass p(known, resolver, limits);
      v = p.run(request);
      misses = p.misses();
    }
    v.passes = pass;
    if (misses.empty() || pass >= limits.max_passes) {
      if (!misses.empty()) {
        v.result = SpfResult::kTemperror;
        v.problem = "too many DNS lookup rounds";
        v.mechanism.clear();
        v.explanation.clear();
      }
      v.comment = commentFor(v, request);
      co_return v;
    }
    co_await resolveAll(resolver, misses, known);
  }
}

}  // namespace mxgate
