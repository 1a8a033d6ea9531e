#include "gateway/smtp_client/reply.h"

#include <cctype>

namespace mxgate::smtp_client {

namespace {

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

// Digits in s from pos, at most max, at least one; returns the count or 0.
size_t digitRun(std::string_view s, size_t pos, size_t max) {
  size_t n = 0;
  while (pos + n < s.size() && isDigit(s[pos + n])) ++n;
  return n >= 1 && n <= max ? n : 0;
}

}  // namespace

ReplyParser::Status ReplyParser::addLine(std::string_view line) {
  // "ddd" alone, "ddd text" or "ddd-text"; the first digit 2..5 (RFC 5321 4.2).
  if (line.size() < 3 || line.size() > kMaxReplyLine || line[0] < '2' || line[0] > '5' ||
      !isDigit(line[1]) || !isDigit(line[2])) {
    return Status::kBad;
  }
  if (line.size() > 3 && line[3] != ' ' && line[3] != '-') return Status::kBad;
  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (lines_.empty()) {
    code_ = code;
  } else if (code != code_) {
    return Status::kBad;  // every line of a reply carries the same code
  }
  if (lines_.size() >= kMaxReplyLines) return Status::kBad;
  lines_.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
  const bool more = line.size() > 3 && line[3] == '-';
  return more ? Status::kMore : Status::kDone;
}

void ReplyParser::clear() {
  code_ = 0;
  lines_.clear();
}

std::string_view enhancedCodeOf(std::string_view text, int code, std::string_view* rest) {
  *rest = text;
  // class.subject.detail: 1 digit (2, 4 or 5, as the reply), 1-3, 1-3.
  if (text.size() < 5 || text[0] != static_cast<char>('0' + code / 100) || text[1] != '.') {
    return {};
  }
  size_t a = digitRun(text, 2, 3);
  if (a == 0 || 2 + a >= text.size() || text[2 + a] != '.') return {};
  size_t b = digitRun(text, 3 + a, 3);
  if (b == 0) return {};
  size_t end = 3 + a + b;
  if (end < text.size() && text[end] != ' ') return {};
  std::string_view code_part = text.substr(0, end);
  *rest = end < text.size() ? text.substr(end + 1) : std::string_view();
  return code_part;
}

SmtpReply ReplyParser::reply(Stage stage, const std::string& host) const {
  SmtpReply r;
  r.code = code_;
  r.stage = stage;
  r.host = host;
  std::string_view first_code;
  for (size_t i = 0; i < lines_.size(); ++i) {
    std::string_view rest;
    std::string_view ec = enhancedCodeOf(lines_[i], code_, &rest);
    if (i == 0) first_code = ec;
    // Servers repeat the enhanced code on every line; keep it once.
    if (ec.empty() || ec != first_code) rest = lines_[i];
    if (!r.text.empty() && !rest.empty()) r.text += ' ';
    r.text += rest;
  }
  if (!first_code.empty()) {
    r.enhanced = std::string(first_code);
  } else {
    r.enhanced = std::to_string(code_ / 100) + ".0.0";
  }
  return r;
}

SmtpReply localReply(int code, std::string_view enhanced, std::string_view text, Stage stage,
                     const std::string& host, bool host_level) {
  SmtpReply r;
  r.code = code;
  r.enhanced = std::string(enhanced);
  r.text = std::string(text);
  r.stage = stage;
  r.host = host;
  r.local = true;
  r.host_level = host_level;
  return r;
}

std::string_view stageName(Stage stage) {
  switch (stage) {
    case Stage::kNone:
      return "none";
    case Stage::kConnect:
      return "connect";
    case Stage::kGreeting:
      return "greeting";
    case Stage::kHelo:
      return "EHLO/HELO command";
    case Stage::kStartTls:
      return "STARTTLS command";
    case Stage::kAuth:
      return "AUTH command";
    case Stage::kRset:
      return "RSET command";
    case Stage::kMail:
      return "MAIL FROM command";
    case Stage::kRcpt:
      return "RCPT TO command";
    case Stage::kData:
      return "DATA command";
    case Stage::kDot:
      return "end of DATA command";
  }
  return "?";
}

Outcome SmtpReply::outcome() const {
  if (code >= 200 && code < 300) return Outcome::kAccepted;
  if (code >= 500 && code < 600) return Outcome::kPermanent;
  return Outcome::kTemporary;  // 4xx, and anything odd, is worth another try
}

std::string SmtpReply::describe() const {
  std::string out;
  if (local) {
    if (!host.empty()) out += host + ": ";
    out += enhanced + " " + text;
    if (stage != Stage::kNone) out += " (" + std::string(stageName(stage)) + ")";
    return out;
  }
  out = "host " + host + " said: " + std::to_string(code) + " " + enhanced;
  if (!text.empty()) out += " " + text;
  out += " (in reply to " + std::string(stageName(stage)) + ")";
  return out;
}

uint64_t OutboundMessage::byteSize() const {
  if (size != 0) return size;
  uint64_t n = 0;
  for (std::string_view p : parts) n += p.size();
  return n;
}

size_t DeliveryReport::count(Outcome o) const {
  size_t n = 0;
  for (const SmtpReply& r : rcpts) n += !r.empty() && r.outcome() == o;
  return n;
}

}  // namespace mxgate::smtp_client
