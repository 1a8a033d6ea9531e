// What the gateway adds to a message before spooling it: a Received header,
// the verdict trace header, spam flags, and the subject tag. The message body
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
  std::string prepend_;
  std::string_view before_;  // message up to the subject tag insertion point
  std::string tag_;          // "[SPAM] " or empty
  std::string_view after_;   // the rest
};

MessageEdit buildMessageEdit(const MessageEditInput& in, std::string_view message);

// RFC 3848 protocol name for Received: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA.
std::string protocolName(const SessionInfo& s);
// RFC 5322 date-time in UTC, e.g. "Sun, 22 Nov 2026 01:32:26 +0000".
std::string rfc5322Date(std::chrono::system_clock::time_point t);
// Folds "name: value" at spaces so no line exceeds 78 characters.
std::string foldHeader(std::string_view name, std::string_view value);

}  // namespace mxgate::smtp
