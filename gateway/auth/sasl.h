// The server side of SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and
// LOGIN mechanisms, as a state machine without I/O: the session feeds it the
// AUTH argument and each client response line, and it says what to send
// next. It only decodes; checking the password is the caller's job.
//
//   AUTH PLAIN <base64(authzid NUL authcid NUL password)>
//   AUTH PLAIN            -> 334 (empty challenge) -> <base64 ...>
//   AUTH LOGIN            -> 334 VXNlcm5hbWU6 -> <base64 user>
//                         -> 334 UGFzc3dvcmQ6 -> <base64 password>
//   AUTH LOGIN <base64 user> -> 334 UGFzc3dvcmQ6 -> ...
//
// A response of "*" cancels (501). An initial response of "=" is an empty
// one (RFC 4954 4).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gateway/pipeline/types.h"

namespace mxgate {

// What the session does next.
struct SaslStep {
  enum class Kind {
    kChallenge,    // send "334 <challenge>" and feed the next line to respond()
    kCredentials,  // verify user/password, then answer 235 or 535
    kError,        // send reply; the exchange is over
  };
  Kind kind = Kind::kError;
  std::string challenge;  // base64, for kChallenge
  Reply reply;            // for kError
  // kError only: the client named an identity it may not use (authzid):
  // a failed login, not a protocol error.
  bool auth_failure = false;
  std::string mechanism;  // "PLAIN" or "LOGIN", once known
  std::string user;       // authcid, for kCredentials (and kError with auth_failure)
  std::string password;   // for kCredentials
};

// The mechanisms we offer, for EHLO: "PLAIN LOGIN".
inline constexpr std::string_view kSaslMechanisms = "PLAIN LOGIN";

class SaslExchange {
 public:
  // arg: what follows "AUTH ", e.g. "PLAIN AGFsaWNlAHNlY3JldA==".
  SaslStep start(std::string_view arg);
  // line: one client response line without its CRLF.
  SaslStep respond(std::string_view line);

 private:
  enum class State { kIdle, kPlain, kLoginUser, kLoginPassword, kDone };
  SaslStep plain(std::string_view decoded);
  SaslStep loginUser(std::string_view decoded);
  SaslStep error(int code, const char* enhanced, const char* text);
  SaslStep challenge(std::string_view text);

  State state_ = State::kIdle;
  std::string mechanism_;
  std::string user_;
};

// Strict base64 (RFC 4648 alphabet with padding); nullopt when malformed.
std::optional<std::string> base64Decode(std::string_view in);
std::string base64Encode(std::string_view in);

}  // namespace mxgate
