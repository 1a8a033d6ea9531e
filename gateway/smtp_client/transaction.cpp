// SmtpConnection::send: one mail transaction (MAIL, RCPT..., DATA).
#include <algorithm>
#include <string>
#include <vector>

#include "gateway/smtp_client/connection.h"
#include "gateway/util/strings.h"

namespace mxgate::smtp_client {

namespace {

// Commands written at once under PIPELINING before their replies are read:
// bounded so that neither side can fill both socket buffers and deadlock
// (RFC 2920 3.1).
constexpr size_t kPipelineBatch = 100;

bool isAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// xtext (RFC 3461 4): printable ASCII without '='; the server judges the rest.
bool isXtext(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e && c != '='; });
}

// NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY.
bool isNotifyList(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == ',';
  });
}

}  // namespace

struct SmtpConnection::Pending {
  Stage stage;
  size_t rcpt;  // index into the message's recipients, for kRcpt
  size_t end;   // end of the command line in out_
};

asio::awaitable<DeliveryReport> SmtpConnection::send(const OutboundMessage& msg) {
  DeliveryReport rep;
  rep.rcpts.resize(msg.rcpts.size());
  lost_before_start_ = false;
  // Every recipient without a final reply gets r (recipients accepted at
  // RCPT are not final until the end of data).
  auto failPending = [&rep](const SmtpReply& r) {
    for (SmtpReply& x : rep.rcpts) {
      if (x.empty()) x = r;
    }
  };
  if (msg.rcpts.empty()) co_return rep;
  if (!usable()) {
    failPending(localReply(451, "4.4.2", "connection not open", Stage::kMail, label_, true));
    co_return rep;
  }

  // Refusals before anything is sent; the session stays usable.
  if (!isCleanPath(msg.mail_from)) {
    failPending(localReply(553, "5.1.7", "bad sender address syntax", Stage::kMail, label_, false));
    co_return rep;
  }
  bool needs_utf8 = msg.smtputf8 || !isAscii(msg.mail_from);
  std::vector<size_t> to_send;
  for (size_t i = 0; i < msg.rcpts.size(); ++i) {
    const std::string& a = msg.rcpts[i].address;
    if (a.empty() || !isCleanPath(a)) {
      rep.rcpts[i] =
          localReply(553, "5.1.3", "bad recipient address syntax", Stage::kRcpt, label_, false);
      continue;
    }
    needs_utf8 = needs_utf8 || !isAscii(a);
    to_send.push_back(i);
  }
  if (to_send.empty()) co_return rep;
  const uint64_t size = msg.byteSize();
  if (caps_.size_limit > 0 && size > caps_.size_limit) {
    failPending(localReply(552, "5.3.4",
                           "message size " + std::to_string(size) +
                               " exceeds the server's limit of " + std::to_string(caps_.size_limit),
                           Stage::kMail, label_, true));
    co_return rep;
  }
  if (msg.eight_bit && !caps_.eight_bit_mime) {
    // RFC 6152 3 lets a relay return the message instead of converting it.
    failPending(localReply(554, "5.6.3",
                           "the message is 8-bit and the server does not offer 8BITMIME",
                           Stage::kMail, label_, true));
    co_return rep;
  }
  if (needs_utf8 && !caps_.smtputf8) {
    failPending(localReply(553, "5.6.7",
                           "the message needs SMTPUTF8 and the server does not offer it",
                           Stage::kMail, label_, true));
    co_return rep;
  }

  // All command lines, one after the other in out_.
  const bool reused = transactions_ > 0;
  std::vector<Pending> cmds;
  cmds.reserve(to_send.size() + 3);
  out_.clear();
  auto add = [&](Stage stage, size_t rcpt) {
    out_ += "\r\n";
    cmds.push_back({stage, rcpt, out_.size()});
  };
  if (reused) {
    out_ += "RSET";
    add(Stage::kRset, 0);
  }
  out_ += "MAIL FROM:<";
  out_ += msg.mail_from;
  out_ += '>';
  if (caps_.size_offered) out_ += " SIZE=" + std::to_string(size);
  if (msg.eight_bit) out_ += " BODY=8BITMIME";
  if (needs_utf8) out_ += " SMTPUTF8";
  if (caps_.dsn) {
    // DSN parameters pass only when the server offers DSN (RFC 3461 5.2);
    // malformed ones are left out rather than risking the transaction.
    if (iequals(msg.ret, "FULL")) out_ += " RET=FULL";
    if (iequals(msg.ret, "HDRS")) out_ += " RET=HDRS";
    if (isXtext(msg.envid)) out_ += " ENVID=" + msg.envid;
  }
  add(Stage::kMail, 0);
  for (size_t i : to_send) {
    const Recipient& rc = msg.rcpts[i];
    out_ += "RCPT TO:<";
    out_ += rc.address;
    out_ += '>';
    if (caps_.dsn) {
      if (isNotifyList(rc.notify)) out_ += " NOTIFY=" + rc.notify;
      if (isXtext(rc.orcpt) && rc.orcpt.find(';') != std::string::npos) {
        out_ += " ORCPT=" + rc.orcpt;
      }
    }
    add(Stage::kRcpt, i);
  }
  out_ += "DATA";
  add(Stage::kData, 0);

  const Timeouts& t = options_.timeouts;
  const size_t batch = caps_.pipelining ? kPipelineBatch : 1;
  std::vector<char> rcpt_ok(msg.rcpts.size(), 0);
  size_t accepted = 0;
  bool any_reply = false;
  bool mail_failed = false;
  SmtpReply mail_reply;
  SmtpReply data_reply;
  for (size_t next = 0; next < cmds.size();) {
    // Without PIPELINING, stop as soon as the rest is pointless.
    if (mail_failed) break;
    if (cmds[next].stage == Stage::kData && accepted == 0) break;
    const size_t end = std::min(next + batch, cmds.size());
    const size_t from = next == 0 ? 0 : cmds[next - 1].end;
    SmtpReply failure;
    if (!co_await writeAll(std::string_view(out_).substr(from, cmds[end - 1].end - from), t.command,
                           &failure, cmds[next].stage)) {
      lost_before_start_ = reused && !any_reply;
      failPending(failure);
      co_return rep;
    }
    for (size_t k = next; k < end; ++k) {
      const Pending& p = cmds[k];
      const auto timeout = p.stage == Stage::kData   ? t.data_init
                           : p.stage == Stage::kRset ? t.rset
                                                     : t.command;
      SmtpReply r = co_await readReply(p.stage, timeout);
      if (r.local || r.code == 421) {
        // A reused connection the server had given up on (closed, or a
        // stale 421 for its idle timeout) took none of this message.
        lost_before_start_ = reused && !any_reply;
        failPending(r);
        co_return rep;
      }
      any_reply = true;
      switch (p.stage) {
        case Stage::kRset:
          if (r.code / 100 != 2) {
            failPending(hostFailure(std::move(r)));
            co_return rep;
          }
          break;
        case Stage::kMail:
          if (r.code / 100 != 2) {
            mail_failed = true;
            mail_reply = std::move(r);
          }
          break;
        case Stage::kRcpt:
          if (mail_failed) break;  // the 503s that follow a refused MAIL
          if (r.code / 100 == 2) {
            rcpt_ok[p.rcpt] = 1;
            ++accepted;
          } else {
            rep.rcpts[p.rcpt] = std::move(r);
          }
          break;
        default:
          data_reply = std::move(r);
          break;
      }
    }
    next = end;
  }
  ++transactions_;

  if (data_reply.code == 354 && (mail_failed || accepted == 0)) {
    // The server should have refused DATA (RFC 2920 3.1); an empty message
    // keeps the session in step. Its reply does not count.
    SmtpReply failure;
    if (!co_await writeAll(".\r\n", t.data_block, &failure, Stage::kDot)) {
      failPending(failure);
      co_return rep;
    }
    SmtpReply ignored = co_await readReply(Stage::kDot, t.final_dot);
    if (ignored.local) {
      failPending(ignored);
      co_return rep;
    }
  }
  if (mail_failed) {
    failPending(mail_reply);
    co_return rep;
  }
  if (accepted == 0) co_return rep;  // each recipient has its RCPT reply
  if (data_reply.code != 354) {
    if (data_reply.code / 100 == 2) {
      broken_ = io_failed_ = true;  // out of step: the data would be taken for commands
      data_reply =
          localReply(451, "4.5.0", "unexpected reply to DATA: " + std::to_string(data_reply.code),
                     Stage::kData, label_, true);
    }
    failPending(data_reply);
    co_return rep;
  }
  if (SmtpReply f = co_await writeData(msg); !f.empty()) {
    failPending(f);
    co_return rep;
  }
  failPending(co_await readReply(Stage::kDot, t.final_dot));
  co_return rep;
}

}  // namespace mxgate::smtp_client
