// Local delivery into Maildirs (https://cr.yp.to/proto/maildir.html).
//
// Layout: <root>/<domain>/<localpart>/Maildir/{tmp,new,cur}, created on demand
// with mode 0700; the bare recipient "postmaster" (RFC 5321 4.5.1 requires it
// be accepted without a domain) maps to <root>/postmaster/Maildir.
//
// Names: the domain and local part are lowercased. They are used as single
// path components, so a part that is empty, starts with '.', or contains '/',
// NUL or another control character is refused (kFailed, 5.1.3), never
// encoded: no address can reach outside <root> or collide with "." / "..".
//
// Durability: the file is written to tmp/ under a unique name, fsync'ed,
// renamed into new/, and new/ is fsync'ed; only then is it kDelivered. A
// reader never sees a partial file in new/.
//
// Content: "Return-Path: <sender>" and "Delivered-To: <rcpt>" are prepended,
// then the spooled bytes follow unchanged (no CRLF -> LF conversion); the
// two headers use the message's own line ending (CRLF if its first line ends
// in CRLF, else LF).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/queue/delivery_agent.h"

namespace mxgate {

class MaildirAgent : public DeliveryAgent {
 public:
  struct Options {
    std::string root;
    uint64_t quota = 0;    // bytes per Maildir (files in new/ and cur/); 0 = none
    std::string hostname;  // for unique names; default gethostname()
  };

  explicit MaildirAgent(Options options);

  DeliveryResult deliver(const SpoolMeta& meta, std::string_view message,
                         const Recipient& rcpt) override;

  // The Maildir directory (holding tmp, new, cur) for address, or false with
  // the reason in *error if the address cannot be mapped safely.
  static bool maildirPath(const std::string& root, std::string_view address, std::string* path,
                          std::string* error);

 private:
  std::string uniqueName(uint64_t size);

  Options options_;
  std::string host_part_;  // hostname with '/' and ':' escaped as the spec says
  std::atomic<uint64_t> counter_{0};
};

}  // namespace mxgate
