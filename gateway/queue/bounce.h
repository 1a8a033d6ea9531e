// Delivery status notifications (RFC 3464 over RFC 3461): the bounce the
// queue sends to the envelope sender when recipients fail for good, and the
// warning it sends while they are delayed. A pure module: it decides and
// composes; the queue spools and delivers the result.
//
// Rules, in the order they are checked (the first that says no wins):
//  1. The null sender <> never gets a DSN (RFC 5321 4.5.5, RFC 3461 6.2):
//     it is how bounces are sent, so answering it could loop.
//  2. delivery.bounce_guard = "never" sends none.
//  3. NOTIFY per recipient (RFC 3461 4.1): absent -> a failure DSN but no
//     delay warning; NEVER -> nothing; otherwise FAILURE and DELAY as listed.
//     No recipient left -> no DSN.
//  4. A message that is itself a delivery report (multipart/report;
//     report-type=delivery-status) but came with a non-null sender is not
//     answered: that sender is broken and a reply could loop. Auto-Submitted
//     does not stop a DSN: RFC 3834 governs auto-replies, not DSNs, and
//     mailing-list software relies on bounces to its (auto-submitted) mail.
//  5. delivery.bounce_guard = "spf_pass" (the default) sends only when the
//     original sender's SPF check passed, so forged senders of spam that
//     later fails here do not receive backscatter. Without the SPF filter no
//     message passes, so no DSN is sent; each drop is logged with its reason.
//
// What the DSN carries of the original (RFC 3461 4.3 RET): RET=FULL -> the
// whole message (message/rfc822) up to delivery.bounce_max_original bytes,
// beyond that the header section only, said so in the text; RET=HDRS or no
// RET -> the header section only (text/rfc822-headers). RFC 3461 leaves the
// choice to the MTA when RET is absent; headers only keeps a misdirected
// bounce small and does not hand spam back in full. Delay warnings always
// carry headers only.
//
// SMTPUTF8 messages get the RFC 6533 forms: message/global-delivery-status,
// message/global-headers and message/global, with "utf-8" address types for
// non-ASCII addresses. Otherwise 8-bit bytes in the returned original are kept
// as they are (Content-Transfer-Encoding: 8bit) and Bounce::eight_bit tells
// the sender to use BODY=8BITMIME; 8-bit bytes in report fields and the
// notification text become '?'.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/spool/spool_record.h"

namespace mxgate {

// Backscatter guard: when a DSN may be sent at all (delivery.bounce_guard).
enum class BounceGuard { kSpfPass, kAlways, kNever };
// "spf_pass", "always", "never"; false if unknown.
bool parseBounceGuard(std::string_view text, BounceGuard* out);
const char* bounceGuardName(BounceGuard g);

inline constexpr uint64_t kDefaultBounceMaxOriginal = 100 * 1024;

struct BounceOptions {
  BounceGuard guard = BounceGuard::kSpfPass;
  // Largest original returned whole for RET=FULL; 0: always headers only.
  uint64_t max_original = kDefaultBounceMaxOriginal;
};

// One recipient to report on.
struct BounceRecipient {
  std::string address;  // the envelope recipient
  // Its position in meta.envelope.rcpts (for NOTIFY and ORCPT); -1: found by
  // address (the first recipient with that address).
  int envelope_index = -1;
  std::string status;      // RFC 3463, e.g. "5.1.1"; malformed -> 5.0.0 / 4.0.0
  std::string diagnostic;  // the last reply, e.g. "550 5.1.1 <u@x>: no such user"
  std::string remote_mta;  // host that gave the reply; empty when local
  std::chrono::system_clock::time_point last_attempt{};  // epoch: no attempt recorded
  std::chrono::system_clock::time_point retry_until{};   // delayed only: the give-up time
};

struct BounceRequest {
  const SpoolMeta* meta = nullptr;  // REQUIRES: non-null
  std::string_view message;         // the spooled message (CRLF line ends)
  std::vector<BounceRecipient> failed;
  std::vector<BounceRecipient> delayed;  // NOTIFY=DELAY warnings
  std::string reporting_mta;             // our host name
  std::chrono::system_clock::time_point now;
};

struct Bounce {
  std::string envelope_from;          // always "" (the null sender)
  std::string envelope_to;            // the original envelope sender
  std::string message;                // RFC 5322, CRLF line ends only
  std::vector<std::string> reported;  // recipients the DSN covers, in order
  bool eight_bit = false;             // needs BODY=8BITMIME
  bool smtputf8 = false;              // needs SMTPUTF8 (UTF-8 addresses or headers)
};

struct BounceOutcome {
  bool send = false;
  // For the log: why no DSN is sent, or what is sent ("failure DSN for 2
  // recipients to <a@b>").
  std::string reason;
  Bounce bounce;  // set when send
};

BounceOutcome buildBounce(const BounceRequest& request, const BounceOptions& options);

// The backscatter decision alone: "" when allowed, else why not.
std::string bounceGuardRefusal(BounceGuard guard, const SpoolMeta& meta);
// Whether the original sender passed SPF. Today this reads the SPF_PASS
// symbol from the spooled symbol trace (SpoolMeta::symbols); the one place
// to change when the spool keeps the SPF result as a field of its own.
bool senderSpfPassed(const SpoolMeta& meta);
// True if the trace "NAME(w)[detail] NAME(w) ..." holds symbol name. Details
// are skipped by bracket depth, so a detail quoting "NAME(" is not a hit.
bool traceHasSymbol(std::string_view trace, std::string_view name);

// RFC 3461 4: "+HH" -> the byte 0xHH; anything else is copied.
std::string xtextDecode(std::string_view text);

}  // namespace mxgate
