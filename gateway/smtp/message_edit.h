// What the gateway changes in a message before spooling it: it adds a
// Received header, the header fields filters asked for (Received-SPF, DKIM
// signatures, ...), one Authentication-Results, the verdict trace header and
// spam flags, and the subject tag; it leaves out header fields filters marked
// for removal and any Authentication-Results claiming our authserv-id. The message body
// is never copied: the result is a list of slices over the original buffer
// and a few small strings, written out with one gathered write.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/config.h"
#include "gateway/pipeline/policy.h"
#include "gateway/pipeline/types.h"

namespace mxgate::smtp {

struct MessageEditInput {
  const Config& config;
  const SessionInfo& session;
  const Envelope& envelope;
  const std::string& queue_id;
  const ScanResult& result;
  Action action;
  std::string trace;  // "NAME(w) NAME(w)..."
};

class MessageEdit {
 public:
  // REQUIRES: the message buffer outlives this object and is not modified.
  std::vector<std::string_view> parts() const;
  const std::string& prepended() const { return prepend_; }

 private:
  friend MessageEdit buildMessageEdit(const MessageEditInput& in, std::string_view message);
  // A run of the received message, or (len == npos) the subject tag.
  struct Piece {
    size_t off = 0;
    size_t len = 0;
  };
  std::string prepend_;
  std::string tag_;  // "[SPAM] " or empty
  std::string_view message_;
  std::vector<Piece> pieces_;  // in output order, after prepend_
};

MessageEdit buildMessageEdit(const MessageEditInput& in, std::string_view message);

// The RFC 8601 Authentication-Results value for facts, or "" when no
// sender-authentication check ran.
std::string authenticationResults(std::string_view authserv_id, const AuthFacts& facts);
// True if an Authentication-Results value names authserv_id (RFC 8601 5:
// such fields from outside are forgeries and are removed).
bool claimsAuthservId(std::string_view value, std::string_view authserv_id);

// RFC 3848 protocol name for Received: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA.
std::string protocolName(const SessionInfo& s);
// RFC 5322 date-time in UTC, e.g. "Sun, 22 Nov 2026 01:32:26 +0000".
std::string rfc5322Date(std::chrono::system_clock::time_point t);
// Folds "name: value" at spaces so no line exceeds 78 characters.
std::string foldHeader(std::string_view name, std::string_view value);

}  // namespace mxgate::smtp
