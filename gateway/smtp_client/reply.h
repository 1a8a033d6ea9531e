// Parsing of server replies (RFC 5321 4.2.1, enhanced codes RFC 3463).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gateway/smtp_client/types.h"

namespace mxgate::smtp_client {

// Bounds on what a server may send as one reply; beyond them the reply is
// garbage and the session is dropped (RFC 5321 4.5.3.1.5 allows 512 bytes a
// line; servers exceed that in EHLO and in long texts, so allow more).
inline constexpr size_t kMaxReplyLine = 4096;
inline constexpr size_t kMaxReplyLines = 200;

// Collects the lines of one reply: "250-first", ..., "250 last".
class ReplyParser {
 public:
  enum class Status { kMore, kDone, kBad };

  // line: one line without its line end. After kDone or kBad, clear() first.
  Status addLine(std::string_view line);
  void clear();

  int code() const { return code_; }
  // The text of each line, after "ddd-" / "ddd ".
  const std::vector<std::string>& lines() const { return lines_; }
  // The reply as SmtpReply (enhanced code split off; lines joined by ' ').
  SmtpReply reply(Stage stage, const std::string& host) const;

 private:
  int code_ = 0;
  std::vector<std::string> lines_;
};

// "5.1.1 rest": the enhanced code at the start of text if its class
// matches code, else "". Sets *rest to what follows it.
std::string_view enhancedCodeOf(std::string_view text, int code, std::string_view* rest);

// A reply the client makes up (local = true).
SmtpReply localReply(int code, std::string_view enhanced, std::string_view text, Stage stage,
                     const std::string& host, bool host_level);

}  // namespace mxgate::smtp_client
