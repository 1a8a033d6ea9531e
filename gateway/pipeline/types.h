// What filters see of an SMTP session and message, and what they report back.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <asio/ip/address.hpp>

namespace mxgate {

// SMTP stages in the order a session passes them. Filters declare the stages
// they run at; a filter may only depend on filters whose first stage is not later.
enum class Stage : uint8_t { kConnect = 0, kHelo, kMail, kRcpt, kData };
inline constexpr int kStageCount = 5;
const char* stageName(Stage s);
// Parses "connect", "helo", "mail", "rcpt", "data"; false if unknown.
bool parseStage(std::string_view name, Stage* out);

// What the policy step does with a message. Ordered by severity; the most
// severe of (score threshold reached, action a filter required) wins.
enum class Action : uint8_t { kAccept, kAddHeader, kTagSubject, kQuarantine, kDiscard, kReject };

// An SMTP reply: code, RFC 3463 enhanced status, text (one line, no CRLF).
struct Reply {
  int code = 0;
  std::string enhanced;
  std::string text;
  bool empty() const { return code == 0; }
};

// Per-connection facts, fixed once known. Read-only to filters.
struct SessionInfo {
  uint64_t id = 0;  // unique per process run, for logs
  asio::ip::address client_ip;
  uint16_t client_port = 0;
  std::string client_name = "unknown";  // reverse DNS once a resolver exists
  std::string helo;
  bool esmtp = false;
  bool tls = false;
  bool trusted = false;  // client is in relay.trusted_networks
  std::string auth_user;
  std::chrono::system_clock::time_point connected_at;
};

// How a session went, given to filters when it ends (for abuse accounting).
struct SessionStats {
  uint32_t messages_accepted = 0;
  uint32_t messages_refused = 0;
  uint32_t bad_recipients = 0;
  uint32_t bad_commands = 0;
  bool timed_out = false;
  uint32_t auth_failures = 0;  // SMTP AUTH attempts refused (535, or the 421 after too many)
};

struct Recipient {
  std::string address;  // without angle brackets; may be "postmaster"
  std::string notify;   // DSN NOTIFY= value as given, empty when absent
  std::string orcpt;    // DSN ORCPT= value as given
};

struct Envelope {
  std::string mail_from;  // empty string = null sender <>
  uint64_t declared_size = 0;
  std::string body;  // "7BIT", "8BITMIME" or empty
  bool smtputf8 = false;
  std::string ret;    // DSN RET=
  std::string envid;  // DSN ENVID=
  std::vector<Recipient> rcpts;
};

// One symbol a filter added. The weight comes from configuration at the time
// the symbol is added, so a reload re-scores without touching filters.
struct SymbolHit {
  std::string name;
  double weight = 0;
  std::string detail;
  std::string filter;
};

// Sender-authentication outcomes, written by the filters that own each check
// (spf, dkim, dmarc) and read by later ones (dmarc reads spf and dkim) and by
// the Authentication-Results header (RFC 8601). Result words are RFC 8601's:
// spf/dmarc: none, pass, fail, softfail, neutral, temperror, permerror;
// dkim: none, pass, fail, policy, neutral, temperror, permerror.
struct SpfOutcome {
  std::string result;       // empty: not checked
  std::string identity;     // "mailfrom" or "helo": which identity result is for
  std::string domain;       // the domain of that identity (MAIL FROM domain or HELO name)
  std::string mailfrom;     // the checked MAIL FROM address ("postmaster@helo" for <>)
  std::string helo_result;  // result of the separate HELO check, if run
  std::string explanation;  // exp= text on fail
  std::string reason;       // free text for comments and Received-SPF
};

struct DkimOutcome {
  std::string result;     // RFC 8601 dkim result word
  std::string domain;     // d=
  std::string selector;   // s=
  std::string algorithm;  // a=, e.g. "rsa-sha256"
  std::string header_b;   // first characters of b= (RFC 6008), to tell signatures apart
  std::string reason;     // why not pass, e.g. "body hash mismatch"
};

struct DmarcOutcome {
  std::string result;       // empty: not evaluated
  std::string header_from;  // RFC5322.From domain
  std::string policy;       // p= (or sp=) applied: none, quarantine, reject
  std::string disposition;  // what we did: none, quarantine, reject
  std::string reason;
};

struct AuthFacts {
  SpfOutcome spf;
  bool dkim_checked = false;  // true once the dkim filter ran (no signature: empty dkim)
  std::vector<DkimOutcome> dkim;
  DmarcOutcome dmarc;
  bool empty() const { return spf.result.empty() && !dkim_checked && dmarc.result.empty(); }
};

// Accumulated per message (or per session before MAIL).
class ScanResult {
 public:
  const std::vector<SymbolHit>& hits() const { return hits_; }
  double score() const { return score_; }
  void addHit(SymbolHit hit) {
    score_ += hit.weight;
    hits_.push_back(std::move(hit));
  }
  bool has(std::string_view symbol) const {
    for (const auto& h : hits_)
      if (h.name == symbol) return true;
    return false;
  }
  void clear() { *this = ScanResult{}; }

  AuthFacts& auth() { return auth_; }
  const AuthFacts& auth() const { return auth_; }

  // A header field to prepend on delivery, below the gateway's Received:
  // "Name: value" without the line end; folded when written.
  void addHeader(std::string name, std::string value) {
    headers_.emplace_back(std::move(name), std::move(value));
  }
  const std::vector<std::pair<std::string, std::string>>& addedHeaders() const { return headers_; }
  // A whole header field of the received message (offset and length in the
  // message buffer, line end included) to leave out on delivery.
  void removeRange(size_t offset, size_t length) { removed_.emplace_back(offset, length); }
  const std::vector<std::pair<size_t, size_t>>& removedRanges() const { return removed_; }
  // Set by a filter that signed the message: no edit may touch the signed
  // header fields or body (the subject tag is then not applied).
  void freezeContent() { frozen_ = true; }
  bool contentFrozen() const { return frozen_; }
  // A filter's verdict that does not go through the score (e.g. DMARC
  // p=quarantine, a hook asking to hold): the message gets at least this.
  void requireAction(Action a) { required_ = std::max(required_, a); }
  Action requiredAction() const { return required_; }

 private:
  std::vector<SymbolHit> hits_;
  double score_ = 0;
  AuthFacts auth_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::vector<std::pair<size_t, size_t>> removed_;
  bool frozen_ = false;
  Action required_ = Action::kAccept;
};

}  // namespace mxgate
