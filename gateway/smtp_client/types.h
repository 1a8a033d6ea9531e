// Values shared by the outbound SMTP client: what to send, where, how, and
// what came back. See README.md in this folder for the rules behind them.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/ip/address.hpp>

#include "gateway/pipeline/types.h"

namespace asio::ssl {
class context;
}

namespace mxgate::smtp_client {

using namespace std::chrono_literals;

// Where to deliver: a host name or IP literal ("192.0.2.1", "2001:db8::1",
// "[192.0.2.1]"). With mx set, host is a domain whose MX records are used
// (RFC 5321 5.1); without, host is connected to directly (its A/AAAA).
struct SmtpTarget {
  std::string host;
  uint16_t port = 25;
  bool mx = false;
};

// STARTTLS (RFC 3207) policy for one route.
enum class TlsPolicy {
  kNone,     // never STARTTLS
  kMay,      // opportunistic: STARTTLS when offered, any certificate accepted
  kEncrypt,  // STARTTLS must be offered and succeed; any certificate accepted
  kVerify,   // as kEncrypt, and the chain and host name are verified
};

// RFC 5321 4.5.3.2 defaults. Each bounds one wait (a read or a write), not a
// whole phase: a slow but moving DATA transfer is fine.
struct Timeouts {
  std::chrono::milliseconds connect = 30s;
  std::chrono::milliseconds greeting = 300s;
  std::chrono::milliseconds command = 300s;  // EHLO, MAIL, RCPT, AUTH, STARTTLS
  std::chrono::milliseconds tls_handshake = 300s;
  std::chrono::milliseconds data_init = 120s;   // reply to DATA
  std::chrono::milliseconds data_block = 180s;  // each write of message data
  std::chrono::milliseconds final_dot = 600s;   // reply to the end of data
  std::chrono::milliseconds rset = 20s;         // RSET before reusing a connection
  std::chrono::milliseconds quit = 10s;
};

struct ClientOptions {
  std::string helo_name = "localhost";  // our name in EHLO/HELO
  TlsPolicy tls = TlsPolicy::kMay;
  // Trust anchors for kVerify; empty: the system's default CA paths.
  std::string ca_file;
  // Optional shared TLS context (see makeClientTlsContext). Null: each
  // connection makes its own when it needs one (costly with kVerify).
  std::shared_ptr<asio::ssl::context> tls_context;
  // AUTH (RFC 4954) with PLAIN or LOGIN when auth_user is set. Credentials
  // go only over TLS unless auth_over_plaintext.
  std::string auth_user;
  std::string auth_password;
  bool auth_over_plaintext = false;
  Timeouts timeouts;
};

// One recipient of an outbound message, with its DSN parameters (RFC 3461)
// as received (NOTIFY value, ORCPT "type;xtext"); empty when absent.
using Recipient = mxgate::Recipient;

struct OutboundMessage {
  std::string mail_from;  // without angle brackets; empty: the null sender <>
  std::vector<Recipient> rcpts;
  std::string ret;         // DSN RET= (FULL or HDRS), empty when absent
  std::string envid;       // DSN ENVID= (xtext), empty when absent
  bool eight_bit = false;  // needs BODY=8BITMIME
  bool smtputf8 = false;   // needs SMTPUTF8 (RFC 6531)
  // The message (header and body) as one or more consecutive slices, with
  // any line ends (CRLF, LF or CR); not dot-stuffed. REQUIRES: the bytes
  // outlive the send.
  std::vector<std::string_view> parts;
  // Total bytes of parts; used for SIZE (RFC 1870). 0: computed from parts.
  uint64_t size = 0;

  uint64_t byteSize() const;
};

// How a reply counts for the recipients it concerns.
enum class Outcome { kAccepted, kTemporary, kPermanent };

// The command a reply answered (for messages like Postfix's "in reply to
// RCPT TO command").
enum class Stage {
  kNone,
  kConnect,
  kGreeting,
  kHelo,
  kStartTls,
  kAuth,
  kRset,
  kMail,
  kRcpt,
  kData,
  kDot
};
std::string_view stageName(Stage stage);

// A server's reply, or a failure the client itself reports (local = true:
// connection refused, timeout, TLS failure, message refused before sending).
struct SmtpReply {
  int code = 0;          // 0: nothing yet (never left so by deliver())
  std::string enhanced;  // RFC 3463 code: the server's, else derived from code
  std::string text;      // reply text without code and enhanced code; lines joined by ' '
  std::string host;      // who answered or failed: "name[address]:port"
  Stage stage = Stage::kNone;
  bool local = false;
  // True when the failure is about this host or session, not the message
  // (connection errors, 421, greeting or EHLO refused, TLS or AUTH failure,
  // SIZE/8BITMIME/SMTPUTF8 limits): the next host may still succeed.
  bool host_level = false;

  bool empty() const { return code == 0; }
  Outcome outcome() const;
  // One line for logs and DSNs: "host mx.example[192.0.2.1]:25 said: 550
  // 5.1.1 no such user (in reply to RCPT TO command)", or for local ones
  // "mx.example[192.0.2.1]:25: 4.4.1 connection refused (connect)".
  std::string describe() const;
};

// What one send() or deliver() made of a message.
struct DeliveryReport {
  // One reply per OutboundMessage::rcpts, in the same order.
  std::vector<SmtpReply> rcpts;
  // deliver(): the failure came from DNS (for a "DNS error attempt limit").
  bool dns_error = false;
  // Every session-level failure met on the way, one describe() line per
  // host tried (also for hosts after which another one succeeded).
  std::vector<std::string> host_failures;

  size_t count(Outcome o) const;
  bool allAccepted() const { return count(Outcome::kAccepted) == rcpts.size(); }
};

}  // namespace mxgate::smtp_client
