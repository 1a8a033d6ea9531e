#include "gateway/smtp/message_edit.h"

#include <strings.h>

#include <ctime>

#include <fmt/format.h>

#include "gateway/smtp/header_scan.h"

namespace mxgate::smtp {

std::string protocolName(const SessionInfo& s) {
  if (!s.esmtp) return "SMTP";
  std::string p = "ESMTP";
  if (s.tls) p += 'S';
  if (!s.auth_user.empty()) p += 'A';
  return p;
}

std::string rfc5322Date(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

std::string foldHeader(std::string_view name, std::string_view value) {
  std::string out(name);
  out += ':';
  size_t line_len = out.size();
  bool line_has_word = false;  // fold only where the line already holds a word
  size_t pos = 0;
  while (pos < value.size()) {
    size_t sp = value.find(' ', pos);
    std::string_view word = value.substr(pos, sp == std::string_view::npos ? value.npos : sp - pos);
    pos = sp == std::string_view::npos ? value.size() : sp + 1;
    if (word.empty()) continue;
    if (line_len + 1 + word.size() > 78 && line_has_word) {
      out += "\r\n\t";
      line_len = 1;
    } else {
      out += ' ';
      ++line_len;
    }
    out += word;
    line_len += word.size();
    line_has_word = true;
  }
  out += "\r\n";
  return out;
}

std::vector<std::string_view> MessageEdit::parts() const {
  std::vector<std::string_view> p{prepend_, before_};
  if (!tag_.empty()) {
    p.push_back(tag_);
    p.push_back(after_);
  }
  return p;
}

namespace {

// The HELO argument is client text that reaches here unchecked; a bare CR
// (or other control character) in it must not split the Received field and
// inject a header of the client's choosing.
std::string headerSafe(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

}  // namespace

MessageEdit buildMessageEdit(const MessageEditInput& in, std::string_view message) {
  const Config& cfg = in.config;
  MessageEdit e;
  // Received (RFC 5321 4.4), first so it is the topmost trace field.
  std::string from =
      fmt::format("from {} ({} [{}])", headerSafe(in.session.helo),
                  headerSafe(in.session.client_name), in.session.client_ip.to_string());
  e.prepend_ = "Received: " + from + "\r\n\tby " + cfg.hostname + " (mxgate) with " +
               protocolName(in.session) + " id " + in.queue_id;
  if (in.envelope.rcpts.size() == 1)
    e.prepend_ += "\r\n\tfor <" + in.envelope.rcpts[0].address + ">";
  e.prepend_ += "; " + rfc5322Date(std::chrono::system_clock::now()) + "\r\n";
  if (!cfg.policy.status_header.empty()) {
    e.prepend_ += foldHeader(
        cfg.policy.status_header,
        fmt::format("{}; action={}; score={:.2f}; symbols={}", cfg.hostname, actionName(in.action),
                    in.result.score(), in.trace.empty() ? "none" : in.trace));
  }
  if (in.action >= Action::kAddHeader) {
    e.prepend_ += "X-Spam-Flag: YES\r\n";
    e.prepend_ += fmt::format("X-Spam-Score: {:.2f}\r\n", in.result.score());
  }
  e.before_ = message;
  if (in.action == Action::kTagSubject && !cfg.policy.subject_tag.empty()) {
    size_t insert_at = std::string_view::npos;
    scanHeaders(message, [&](const HeaderField& f) {
      if (f.name.size() == 7 && strncasecmp(f.name.data(), "Subject", 7) == 0) {
        insert_at = f.value_offset;
        if (insert_at < message.size() && message[insert_at] == ' ') ++insert_at;
        return false;
      }
      return true;
    });
    if (insert_at == std::string_view::npos) {
      e.prepend_ += "Subject: " + cfg.policy.subject_tag + "\r\n";
    } else {
      e.before_ = message.substr(0, insert_at);
      e.tag_ = cfg.policy.subject_tag + " ";
      e.after_ = message.substr(insert_at);
    }
  }
  return e;
}

}  // namespace mxgate::smtp
