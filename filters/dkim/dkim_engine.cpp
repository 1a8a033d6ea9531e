#include "filters/dkim/dkim_engine.h"

#include <atomic>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "filters/dkim/dkim_tags.h"
#include "filters/dkim/opendkim.h"
#include "gateway/util/strings.h"

namespace mxgate::dkim {
namespace {

// What the key callback sees of one verification (dkim_set_user_context).
struct LookupContext {
  const KeyAnswers* keys;
};

std::string keyNameOf(DKIM_SIGINFO* sig) {
  const u_char* d = dkim_sig_getdomain(sig);
  const u_char* s = dkim_sig_getselector(sig);
  if (d == nullptr || s == nullptr) return {};
  return toLower(reinterpret_cast<const char*>(s)) + "._domainkey." +
         toLower(reinterpret_cast<const char*>(d));
}

// Serves only the answers fetched beforehand through the shared resolver.
DKIM_CBSTAT lookupKey(DKIM* dkim, DKIM_SIGINFO* sig, u_char* buf, size_t buflen) {
  const auto* ctx = static_cast<const LookupContext*>(dkim_get_user_context(dkim));
  auto it = ctx->keys->find(keyNameOf(sig));
  // DKIM_CBSTAT_ERROR or _TRYAGAIN would end the whole verification, so
  // every failure is "not found" here; judge() tells the DNS failures apart.
  if (it == ctx->keys->end()) return DKIM_CBSTAT_NOTFOUND;
  const DnsAnswer& a = it->second;
  switch (a.status) {
    case DnsStatus::kOk: {
      // Several TXT records: RFC 6376 3.6.2.2 leaves the choice open; take
      // the first, as most verifiers do.
      const std::string& rec = a.records.front();
      if (rec.size() >= buflen) return DKIM_CBSTAT_NOTFOUND;
      std::memcpy(buf, rec.data(), rec.size());
      buf[rec.size()] = '\0';
      return DKIM_CBSTAT_CONTINUE;
    }
    case DnsStatus::kNxDomain:
    case DnsStatus::kNoData:
      return DKIM_CBSTAT_NOTFOUND;
    default:
      return DKIM_CBSTAT_NOTFOUND;
  }
}

bool isKeyError(int err) {
  switch (err) {
    case DKIM_SIGERROR_NOKEY:
    case DKIM_SIGERROR_DNSSYNTAX:
    case DKIM_SIGERROR_MULTIREPLY:
    case DKIM_SIGERROR_KEYVERSION:
    case DKIM_SIGERROR_KEYUNKNOWNHASH:
    case DKIM_SIGERROR_KEYHASHMISMATCH:
    case DKIM_SIGERROR_NOTEMAILKEY:
    case DKIM_SIGERROR_KEYTYPEMISSING:
    case DKIM_SIGERROR_KEYTYPEUNKNOWN:
    case DKIM_SIGERROR_KEYREVOKED:
    case DKIM_SIGERROR_KEYDECODE:
    case DKIM_SIGERROR_KEYTOOSMALL:
    case DKIM_SIGERROR_SUBDOMAIN:
      return true;
    default:
      return false;
  }
}

// key: a tag of the key record rather than of the signature.
std::string tagValue(DKIM_SIGINFO* sig, const char* tag, bool key = false) {
  const u_char* v =
      dkim_sig_gettagvalue(sig, key, reinterpret_cast<u_char*>(const_cast<char*>(tag)));
  return v == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(v));
}

// RFC 6376 3.5: q= lists query methods; "dns/txt" (or "dns") is the only
// one defined. libopendkim does not check it when a key callback is set.
bool queryMethodOk(const std::string& q) {
  if (q.empty()) return true;
  size_t pos = 0;
  while (pos <= q.size()) {
    size_t colon = q.find(':', pos);
    std::string m = toLower(q.substr(pos, colon == std::string::npos ? q.npos : colon - pos));
    if (m == "dns/txt" || m == "dns") return true;
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  return false;
}

SignatureCheck judge(DKIM_SIGINFO* sig, const KeyAnswers& keys, const EngineOptions& options,
                     size_t index) {
  SignatureCheck c;
  DkimOutcome& o = c.outcome;
  if (const u_char* d = dkim_sig_getdomain(sig))
    o.domain = toLower(reinterpret_cast<const char*>(d));
  if (const u_char* s = dkim_sig_getselector(sig)) o.selector = reinterpret_cast<const char*>(s);
  o.algorithm = toLower(tagValue(sig, "a"));
  o.header_b = tagValue(sig, "b").substr(0, 8);

  const unsigned flags = dkim_sig_getflags(sig);
  unsigned bits = 0;
  if (dkim_sig_getkeysize(sig, &bits) == DKIM_STAT_OK) c.key_bits = bits;
  dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
  dkim_sig_getsignalg(sig, &alg);
  c.weak = o.algorithm == "rsa-sha1" ||
           (alg != DKIM_SIGN_ED25519SHA256 && c.key_bits > 0 && c.key_bits < 1024);

  if (index >= options.max_signatures) {
    o.result = "neutral";
    o.reason = fmt::format("not checked: more than {} signatures", options.max_signatures);
    return c;
  }
  const int err = dkim_sig_geterror(sig);
  const int bh = dkim_sig_getbh(sig);
  if ((err == DKIM_SIGERROR_OK || err == DKIM_SIGERROR_UNKNOWN || err == DKIM_SIGERROR_BADSIG) &&
      bh == DKIM_SIGBH_MISMATCH) {
    // libopendkim marks some of these BADSIG too; the body is what changed.
    o.result = "fail";
    o.reason = "body hash mismatch";
  } else if (err == DKIM_SIGERROR_OK || err == DKIM_SIGERROR_UNKNOWN) {
    if ((flags & DKIM_SIGFLAG_PASSED) && bh == DKIM_SIGBH_MATCH) {
      o.result = "pass";
    } else if (bh == DKIM_SIGBH_MISMATCH) {
      o.result = "fail";
      o.reason = "body hash mismatch";
    } else if (flags & DKIM_SIGFLAG_PROCESSED) {
      o.result = "fail";
      o.reason = "signature did not verify";
    } else {
      o.result = "neutral";
      o.reason = "not checked";
    }
  } else if (err == DKIM_SIGERROR_BADSIG || err == DKIM_SIGERROR_TOOLARGE_L ||
             err == DKIM_SIGERROR_MBSFAILED) {
    o.result = "fail";
    o.reason = err == DKIM_SIGERROR_BADSIG ? "signature did not verify" : dkim_sig_geterrorstr(err);
  } else if (err == DKIM_SIGERROR_KEYFAIL) {
    o.result = "temperror";
    o.reason = "key lookup failed";
  } else {
    o.result = "permerror";
    o.reason = dkim_sig_geterrorstr(err);
    c.key_problem = isKeyError(err);
  }
  // RFC 6376 6.1.2: a key whose k= does not suit a= is PERMFAIL
  // (libopendkim goes by a= alone).
  if (o.result == "pass" || o.result == "fail") {
    std::string k = toLower(tagValue(sig, "k", true));
    if (k.empty()) k = "rsa";
    if (o.algorithm.compare(0, k.size() + 1, k + "-") != 0) {
      o.result = "permerror";
      o.reason = "inappropriate key algorithm";
      c.key_problem = true;
    }
  }
  if ((o.result == "pass" || o.result == "fail") && !queryMethodOk(tagValue(sig, "q"))) {
    o.result = "permerror";
    o.reason = "unsupported query method";
    c.key_problem = false;
  }
  if (o.result != "pass" && o.result != "fail") {
    // The DNS status decides between "no key" and "try again later".
    auto it = keys.find(keyNameOf(sig));
    if (it != keys.end() &&
        (it->second.status == DnsStatus::kTimeout || it->second.status == DnsStatus::kServFail ||
         it->second.status == DnsStatus::kError)) {
      o.result = "temperror";
      o.reason = fmt::format("key lookup: {}", dnsStatusName(it->second.status));
      c.key_problem = false;
    }
  }
  return c;
}

std::atomic<uint64_t> g_job_id{0};

std::string jobId() {
  return "mxgate-" + std::to_string(++g_job_id);
}

}  // namespace

const std::vector<std::string>& DkimEngine::signedHeaders() {
  static const std::vector<std::string> kHeaders{"from",
                                                 "sender",
                                                 "reply-to",
                                                 "subject",
                                                 "date",
                                                 "to",
                                                 "cc",
                                                 "message-id",
                                                 "in-reply-to",
                                                 "references",
                                                 "mime-version",
                                                 "content-type",
                                                 "content-transfer-encoding",
                                                 "list-*"};
  return kHeaders;
}

DkimEngine::DkimEngine(EngineOptions options)
    : options_(options), lib_(dkim_init(nullptr, nullptr)) {
  if (lib_ == nullptr) throw std::runtime_error("libopendkim: dkim_init failed");
  if (!dkim_libfeature(lib_, DKIM_FEATURE_ED25519)) {
    dkim_close(lib_);
    throw std::runtime_error("libopendkim was built without ed25519 support");
  }
  // Every signature gets a handle, even a malformed one, so each is reported.
  unsigned flags = DKIM_LIBFLAGS_BADSIGHANDLES;
  dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
  unsigned minbits = options_.min_rsa_bits;
  dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &minbits, sizeof minbits);
  // DKIM_OPTS_SIGNHDRS and _OVERSIGNHDRS copy the lists (NULL-terminated).
  std::vector<const char*> sign;
  for (const std::string& h : signedHeaders()) sign.push_back(h.c_str());
  sign.push_back(nullptr);
  dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, sign.data(), sizeof(const char**));
  const char* over[] = {"from", nullptr};
  dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, over, sizeof(const char**));
  dkim_set_key_lookup(lib_, lookupKey);
}

DkimEngine::~DkimEngine() {
  dkim_close(lib_);
}

std::vector<SignatureCheck> DkimEngine::verify(std::string_view message,
                                               const KeyAnswers& keys) const {
  std::vector<SignatureRef> refs = findSignatures(message);
  std::vector<SignatureCheck> out;
  if (refs.empty()) return out;
  const std::string id = jobId();
  DKIM_STAT st = DKIM_STAT_OK;
  DKIM* d = dkim_verify(lib_, reinterpret_cast<const u_char*>(id.c_str()), nullptr, &st);
  if (d == nullptr) throw std::runtime_error("libopendkim: dkim_verify failed");
  LookupContext lookup{&keys};
  dkim_set_user_context(d, &lookup);
  std::string data(message);  // libopendkim takes a non-const buffer
  st = dkim_chunk(d, reinterpret_cast<u_char*>(data.data()), data.size());
  if (st == DKIM_STAT_OK) st = dkim_chunk(d, nullptr, 0);
  if (st == DKIM_STAT_OK) st = dkim_eom(d, nullptr);
  DKIM_SIGINFO** sigs = nullptr;
  int n = 0;
  if (dkim_getsiglist(d, &sigs, &n) != DKIM_STAT_OK) n = 0;
  for (int i = 0; i < n; ++i) out.push_back(judge(sigs[i], keys, options_, i));
  // Fields libopendkim could not take apart at all: permerror, named by our parse.
  const char* why = dkim_geterror(d);
  for (size_t i = out.size(); i < refs.size(); ++i) {
    SignatureCheck c;
    c.outcome = {"permerror",      refs[i].domain,
                 refs[i].selector, refs[i].algorithm,
                 refs[i].header_b, why != nullptr && *why ? why : "malformed signature"};
    out.push_back(std::move(c));
  }
  dkim_free(d);
  return out;
}

std::string DkimEngine::sign(std::string_view message, const SigningKey& key) const {
  const std::string id = jobId();
  DKIM_STAT st = DKIM_STAT_OK;
  DKIM* d = dkim_sign(lib_, reinterpret_cast<const u_char*>(id.c_str()), nullptr,
                      reinterpret_cast<dkim_sigkey_t>(const_cast<char*>(key.pem.c_str())),
                      reinterpret_cast<const u_char*>(key.selector.c_str()),
                      reinterpret_cast<const u_char*>(key.domain.c_str()), DKIM_CANON_RELAXED,
                      key.relaxed_body ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE,
                      key.type == KeyType::kEd25519 ? DKIM_SIGN_ED25519SHA256 : DKIM_SIGN_RSASHA256,
                      -1, &st);
  if (d == nullptr)
    throw std::runtime_error(fmt::format("libopendkim: dkim_sign: {}", dkim_getresultstr(st)));
  dkim_set_margin(d, 0);  // no line breaks: foldHeader folds at its spaces
  std::string data(message);
  st = dkim_chunk(d, reinterpret_cast<u_char*>(data.data()), data.size());
  if (st == DKIM_STAT_OK) st = dkim_chunk(d, nullptr, 0);
  if (st == DKIM_STAT_OK) st = dkim_eom(d, nullptr);
  u_char* hdr = nullptr;
  size_t len = 0;
  if (st == DKIM_STAT_OK) st = dkim_getsighdr_d(d, std::strlen(DKIM_SIGNHEADER) + 2, &hdr, &len);
  if (st != DKIM_STAT_OK) {
    const char* why = dkim_geterror(d);
    std::string msg = fmt::format("libopendkim: signing for {} failed: {}", key.domain,
                                  why != nullptr && *why ? why : dkim_getresultstr(st));
    dkim_free(d);
    throw std::runtime_error(msg);
  }
  std::string value(reinterpret_cast<const char*>(hdr), len);
  dkim_free(d);
  return value;
}

}  // namespace mxgate::dkim
