#include "gateway/queue/bounce.h"

#include <algorithm>

#include <fmt/format.h>

#include "gateway/smtp/header_scan.h"
#include "gateway/smtp/message_edit.h"
#include "gateway/util/strings.h"

namespace mxgate {
namespace {

using TimePoint = std::chrono::system_clock::time_point;

constexpr size_t kTextWidth = 76;
// A field value longer than this is cut: a remote reply is at most 512
// octets (RFC 5321 4.5.3.1.5) and an address 256, so only garbage is cut.
constexpr size_t kMaxFieldValue = 900;
constexpr int kBoundaryAttempts = 64;

bool isAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// One line of text safe in a header field or a report field: control
// characters (CR and LF above all: header injection) become spaces, runs of
// spaces collapse, and 8-bit bytes become '?' unless allowed.
std::string oneLine(std::string_view s, bool allow_8bit) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxFieldValue));
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) c = ' ';
    if (c >= 0x80 && !allow_8bit) c = '?';
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += static_cast<char>(c);
    if (out.size() >= kMaxFieldValue) break;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// An address for angle brackets in a header field.
std::string bracketed(std::string_view address, bool allow_8bit) {
  std::string a = oneLine(address, allow_8bit);
  a.erase(
      std::remove_if(a.begin(), a.end(), [](char c) { return c == '<' || c == '>' || c == ' '; }),
      a.end());
  return "<" + a + ">";
}

// Host names go into fields unquoted: keep only what a DNS name may hold.
std::string hostName(std::string_view h) {
  std::string out;
  for (char c : h)
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '-' || c == '_' || c == '[' || c == ']' || c == ':')
      out += c;
  return out.empty() ? "localhost" : out;
}

std::string alnum(std::string_view s) {
  std::string out;
  for (char c : s)
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) out += c;
  return out;
}

// Any line end in text becomes CRLF; the result ends with CRLF unless empty.
void appendCrlf(std::string& out, std::string_view text) {
  out.reserve(out.size() + text.size() + 2);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r') {
      out += "\r\n";
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out += c;
    }
  }
  if (!text.empty() && !(out.size() >= 2 && out.compare(out.size() - 2, 2, "\r\n") == 0))
    out += "\r\n";
}

// Word-wraps one paragraph at kTextWidth; continuation lines get indent.
void appendWrapped(std::string& out, std::string_view text, std::string_view indent = {}) {
  size_t line = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t sp = text.find(' ', pos);
    std::string_view word = text.substr(pos, sp == text.npos ? text.npos : sp - pos);
    pos = sp == text.npos ? text.size() : sp + 1;
    if (word.empty()) continue;
    if (line > 0 && line + 1 + word.size() > kTextWidth) {
      out += "\r\n";
      out += indent;
      line = indent.size();
    } else if (line > 0) {
      out += ' ';
      ++line;
    }
    out += word;
    line += word.size();
  }
  out += "\r\n";
}

std::string date(TimePoint t) {
  return smtp::rfc5322Date(t);
}

bool validStatus(std::string_view s) {
  // class "." subject "." detail: [245] . 1*3digit . 1*3digit (RFC 3463).
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || i - start > 3) return false;
    if (part == 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  return i == s.size();
}

bool startsWithReplyCode(std::string_view s) {
  return s.size() >= 3 && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
         s[2] <= '9' && (s.size() == 3 || s[3] == ' ' || s[3] == '-');
}

struct NotifyWants {
  bool failure = true;
  bool delay = false;
};

// RFC 3461 4.1: absent NOTIFY means the MTA's default, which here is a
// failure DSN and no delay warning.
NotifyWants notifyWants(std::string_view notify) {
  notify = trim(notify);
  if (notify.empty()) return {};
  NotifyWants w{false, false};
  while (!notify.empty()) {
    size_t comma = notify.find(',');
    std::string_view word = trim(notify.substr(0, comma));
    notify = comma == notify.npos ? std::string_view{} : notify.substr(comma + 1);
    if (iequals(word, "NEVER")) return {false, false};
    if (iequals(word, "FAILURE")) w.failure = true;
    if (iequals(word, "DELAY")) w.delay = true;
  }
  return w;
}

const Recipient* envelopeRecipient(const Envelope& env, const BounceRecipient& r) {
  if (r.envelope_index >= 0 && static_cast<size_t>(r.envelope_index) < env.rcpts.size())
    return &env.rcpts[r.envelope_index];
  for (const Recipient& e : env.rcpts)
    if (e.address == r.address) return &e;
  return nullptr;
}

// The header section of a message: every header field, without the blank line.
std::string_view headerSection(std::string_view message) {
  size_t end = 0;
  smtp::scanHeaders(message, [&](const smtp::HeaderField& f) {
    end = f.end;
    return true;
  });
  return message.substr(0, end);
}

bool isDeliveryReport(std::string_view message) {
  bool report = false;
  smtp::scanHeaders(message, [&](const smtp::HeaderField& f) {
    if (!iequals(f.name, "Content-Type")) return true;
    std::string v = toLower(f.value);
    report = v.find("multipart/report") != std::string::npos &&
             v.find("delivery-status") != std::string::npos;
    return false;
  });
  return report;
}

// A report entry with everything sanitized.
struct Entry {
  const BounceRecipient* in = nullptr;
  const Recipient* rcpt = nullptr;  // envelope recipient, if found
  bool failed = false;
};

struct Composer {
  const SpoolMeta& meta;
  bool global;  // RFC 6533 forms (the original used SMTPUTF8)
  std::string host;

  // "rfc822; a@b", or "utf-8; ..." for a non-ASCII address in a global report.
  std::string addressField(std::string_view address) const {
    std::string a = oneLine(address, global);
    return (isAscii(a) ? "rfc822; " : "utf-8; ") + a;
  }

  // ORCPT is "addr-type ; xtext" (RFC 3461 4.2); the report shows it decoded.
  std::string originalRecipient(std::string_view orcpt) const {
    size_t semi = orcpt.find(';');
    if (semi == orcpt.npos) return {};
    std::string_view type = trim(orcpt.substr(0, semi));
    bool atom = !type.empty() && std::all_of(type.begin(), type.end(), [](char ch) {
      return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '-';
    });
    std::string addr = oneLine(xtextDecode(orcpt.substr(semi + 1)), global);
    if (!atom || addr.empty()) return {};
    return toLower(type) + "; " + addr;
  }

  std::string reportFields(const std::vector<Entry>& entries) const {
    std::string out;
    out += smtp::foldHeader("Reporting-MTA", "dns; " + host);
    out += smtp::foldHeader("X-Mxgate-Queue-ID", alnum(meta.queue_id));
    if (!meta.envelope.envid.empty())
      out += smtp::foldHeader("Original-Envelope-Id",
                              oneLine(xtextDecode(meta.envelope.envid), global));
    if (meta.received_ms > 0)
      out += smtp::foldHeader("Arrival-Date",
                              date(TimePoint(std::chrono::milliseconds(meta.received_ms))));
    for (const Entry& e : entries) {
      const BounceRecipient& r = *e.in;
      out += "\r\n";
      out += smtp::foldHeader("Final-Recipient", addressField(r.address));
      if (e.rcpt && !e.rcpt->orcpt.empty()) {
        std::string orig = originalRecipient(e.rcpt->orcpt);
        if (!orig.empty()) out += smtp::foldHeader("Original-Recipient", orig);
      }
      out += smtp::foldHeader("Action", e.failed ? "failed" : "delayed");
      out += smtp::foldHeader("Status", statusOf(e));
      if (!r.remote_mta.empty())
        out += smtp::foldHeader("Remote-MTA", "dns; " + hostName(r.remote_mta));
      std::string diag = oneLine(r.diagnostic, global);
      if (!diag.empty())
        out += smtp::foldHeader("Diagnostic-Code",
                                (startsWithReplyCode(diag) ? "smtp; " : "x-local; ") + diag);
      if (r.last_attempt != TimePoint{})
        out += smtp::foldHeader("Last-Attempt-Date", date(r.last_attempt));
      if (!e.failed && r.retry_until != TimePoint{})
        out += smtp::foldHeader("Will-Retry-Until", date(r.retry_until));
    }
    return out;
  }

  static std::string statusOf(const Entry& e) {
    if (validStatus(e.in->status)) return e.in->status;
    return e.failed ? "5.0.0" : "4.0.0";
  }

  std::string notification(const std::vector<Entry>& entries,
                           std::string_view returned_note) const {
    std::string out;
    appendWrapped(out, "This is the mail system at host " + host + ".");
    out += "\r\n";
    size_t failed =
        std::count_if(entries.begin(), entries.end(), [](const Entry& e) { return e.failed; });
    auto list = [&](bool want_failed) {
      for (const Entry& e : entries) {
        if (e.failed != want_failed) continue;
        const BounceRecipient& r = *e.in;
        std::string line = bracketed(r.address, global) + ": ";
        std::string diag = oneLine(r.diagnostic, global);
        if (!r.remote_mta.empty()) line += "host " + hostName(r.remote_mta) + " said: ";
        line += diag.empty() ? "status " + statusOf(e) : diag;
        appendWrapped(out, line, "    ");
      }
    };
    if (failed > 0) {
      appendWrapped(out,
                    "Your message could not be delivered to the recipients below. This is a "
                    "permanent error: the mail system will not try again.");
      out += "\r\n";
      list(true);
      out += "\r\n";
    }
    if (failed < entries.size()) {
      TimePoint until{};
      for (const Entry& e : entries)
        if (!e.failed) until = std::max(until, e.in->retry_until);
      std::string text =
          "Your message could not be delivered yet to the recipients below. The mail "
          "system will keep trying";
      if (until != TimePoint{}) text += " until " + date(until);
      text +=
          "; you do not need to send it again. You will be told if delivery finally "
          "fails.";
      appendWrapped(out, text);
      out += "\r\n";
      list(false);
      out += "\r\n";
    }
    appendWrapped(out, returned_note);
    return out;
  }
};

uint64_t fnv1a(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

bool parseBounceGuard(std::string_view text, BounceGuard* out) {
  if (text == "spf_pass")
    *out = BounceGuard::kSpfPass;
  else if (text == "always")
    *out = BounceGuard::kAlways;
  else if (text == "never")
    *out = BounceGuard::kNever;
  else
    return false;
  return true;
}

const char* bounceGuardName(BounceGuard g) {
  switch (g) {
    case BounceGuard::kSpfPass:
      return "spf_pass";
    case BounceGuard::kAlways:
      return "always";
    case BounceGuard::kNever:
      return "never";
  }
  return "?";
}

std::string xtextDecode(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

bool traceHasSymbol(std::string_view t, std::string_view name) {
  size_t i = 0;
  while (i < t.size()) {
    while (i < t.size() && t[i] == ' ') ++i;
    size_t start = i;
    while (i < t.size() && t[i] != '(' && t[i] != '[' && t[i] != ' ') ++i;
    std::string_view token = t.substr(start, i - start);
    if (i < t.size() && t[i] == '(') {
      size_t close = t.find(')', i);
      i = close == t.npos ? t.size() : close + 1;
    }
    if (i < t.size() && t[i] == '[') {
      int depth = 0;
      for (; i < t.size(); ++i) {
        if (t[i] == '[') ++depth;
        if (t[i] == ']' && --depth == 0) {
          ++i;
          break;
        }
      }
    }
    if (token == name) return true;
  }
  return false;
}

bool senderSpfPassed(const SpoolMeta& meta) {
  return traceHasSymbol(meta.symbols, "SPF_PASS");
}

std::string bounceGuardRefusal(BounceGuard guard, const SpoolMeta& meta) {
  switch (guard) {
    case BounceGuard::kAlways:
      return {};
    case BounceGuard::kNever:
      return "bounces are off (delivery.bounce_guard = never)";
    case BounceGuard::kSpfPass:
      if (senderSpfPassed(meta)) return {};
      return "the sender did not pass SPF, so it may be forged (delivery.bounce_guard = spf_pass)";
  }
  return "unknown bounce guard";
}

BounceOutcome buildBounce(const BounceRequest& req, const BounceOptions& options) {
  const SpoolMeta& meta = *req.meta;
  const Envelope& env = meta.envelope;
  BounceOutcome out;
  auto refuse = [&](std::string why) {
    out.send = false;
    out.reason = std::move(why);
    return out;
  };
  if (env.mail_from.empty())
    return refuse("the sender is <>: no DSN is ever sent to the null sender");
  if (req.failed.empty() && req.delayed.empty()) return refuse("nothing to report");
  if (options.guard == BounceGuard::kNever) return refuse(bounceGuardRefusal(options.guard, meta));

  std::vector<Entry> entries;
  for (const BounceRecipient& r : req.failed) {
    const Recipient* e = envelopeRecipient(env, r);
    if (notifyWants(e ? e->notify : "").failure) entries.push_back({&r, e, true});
  }
  for (const BounceRecipient& r : req.delayed) {
    const Recipient* e = envelopeRecipient(env, r);
    if (notifyWants(e ? e->notify : "").delay) entries.push_back({&r, e, false});
  }
  if (entries.empty()) return refuse("no recipient asked for this notification (NOTIFY)");
  if (isDeliveryReport(req.message))
    return refuse("the message is itself a delivery report but has a non-null sender");
  if (std::string why = bounceGuardRefusal(options.guard, meta); !why.empty()) return refuse(why);

  const bool global = env.smtputf8;
  Composer c{meta, global, hostName(req.reporting_mta)};
  const size_t failed =
      std::count_if(entries.begin(), entries.end(), [](const Entry& e) { return e.failed; });

  // What of the original goes back (see the header comment).
  std::string_view headers = headerSection(req.message);
  const bool want_full = failed > 0 && iequals(trim(env.ret), "FULL");
  const bool full =
      want_full && options.max_original > 0 && req.message.size() <= options.max_original;
  std::string original;
  appendCrlf(original, full ? req.message : headers);
  std::string note;
  if (full)
    note = "The message is attached below.";
  else if (want_full)
    note = fmt::format(
        "The message was larger than {} bytes, so only its header section is attached below.",
        options.max_original);
  else
    note = "The header section of the message is attached below.";

  std::string text = c.notification(entries, note);
  std::string report = c.reportFields(entries);
  const bool text_8bit = !isAscii(text);
  const bool original_8bit = !isAscii(original);

  std::string boundary;
  for (int attempt = 0; attempt < kBoundaryAttempts && boundary.empty(); ++attempt) {
    // "=_" cannot occur in quoted-printable or base64 text, and the hash of
    // the content cannot be known to whoever wrote the content.
    uint64_t h = fnv1a(original, fnv1a(text, fnv1a(report, attempt)));
    std::string b = fmt::format("=_mxgate_{}_{:016x}", alnum(meta.queue_id).substr(0, 20), h);
    std::string delimiter = "--" + b;
    if (original.find(delimiter) == std::string::npos &&
        text.find(delimiter) == std::string::npos && report.find(delimiter) == std::string::npos)
      boundary = b;
  }
  if (boundary.empty()) return refuse("no MIME boundary could be found that the content lacks");

  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(req.now.time_since_epoch()).count();
  std::string m;
  m += smtp::foldHeader("From", "\"Mail Delivery System\" <MAILER-DAEMON@" + c.host + ">");
  m += smtp::foldHeader("To", bracketed(env.mail_from, global));
  m += smtp::foldHeader("Subject", failed > 0 ? "Undelivered Mail Returned to Sender"
                                              : "Delayed Mail (still being retried)");
  m += smtp::foldHeader("Date", date(req.now));
  m += smtp::foldHeader("Message-ID", fmt::format("<{}.{}.{}@{}>", now_ms, alnum(meta.queue_id),
                                                  failed > 0 ? "F" : "D", c.host));
  m += "MIME-Version: 1.0\r\n";
  m += "Auto-Submitted: auto-replied\r\n";
  m += smtp::foldHeader(
      "Content-Type",
      "multipart/report; report-type=delivery-status; boundary=\"" + boundary + "\"");
  const bool top_8bit = !isAscii(m);
  m += "\r\nThis is a MIME-encapsulated message.\r\n\r\n";

  m += "--" + boundary + "\r\n";
  m += "Content-Description: Notification\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += text_8bit ? "Content-Transfer-Encoding: 8bit\r\n" : "";
  m += "\r\n" + text + "\r\n";

  m += "--" + boundary + "\r\n";
  m += "Content-Description: Delivery report\r\n";
  m += global ? "Content-Type: message/global-delivery-status\r\n"
              : "Content-Type: message/delivery-status\r\n";
  m += !isAscii(report) ? "Content-Transfer-Encoding: 8bit\r\n" : "";
  m += "\r\n" + report + "\r\n";

  m += "--" + boundary + "\r\n";
  if (full) {
    m += "Content-Description: Undelivered Message\r\n";
    m += global ? "Content-Type: message/global\r\n" : "Content-Type: message/rfc822\r\n";
  } else {
    m += "Content-Description: Undelivered Message Headers\r\n";
    m += global ? "Content-Type: message/global-headers\r\n"
                : "Content-Type: text/rfc822-headers\r\n";
  }
  // message/rfc822 allows only 7bit, 8bit or binary (RFC 2046 5.2.1): 8-bit
  // content is declared as such and needs an 8BITMIME path.
  m += original_8bit ? "Content-Transfer-Encoding: 8bit\r\n" : "";
  m += "\r\n" + original;
  m += "\r\n--" + boundary + "--\r\n";

  out.send = true;
  out.bounce.envelope_from.clear();
  out.bounce.envelope_to = env.mail_from;
  out.bounce.message = std::move(m);
  for (const Entry& e : entries) out.bounce.reported.push_back(e.in->address);
  out.bounce.eight_bit = text_8bit || original_8bit || !isAscii(report) || top_8bit;
  out.bounce.smtputf8 = top_8bit || !isAscii(env.mail_from);
  if (failed > 0) out.reason = fmt::format("failure DSN for {} recipient(s)", failed);
  if (failed < entries.size())
    out.reason += fmt::format("{}delay warning for {} recipient(s)", failed > 0 ? " and " : "",
                              entries.size() - failed);
  out.reason += " to " + bracketed(env.mail_from, true);
  return out;
}

}  // namespace mxgate
