// What filters see of an SMTP session and message, and what they report back.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
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
  void clear() {
    hits_.clear();
    score_ = 0;
  }

 private:
  std::vector<SymbolHit> hits_;
  double score_ = 0;
};

}  // namespace mxgate
