#include "gateway/auth/sasl.h"

#include <sodium.h>

#include "gateway/util/strings.h"

namespace mxgate {
namespace {

// Longer names or passwords are refused before any hashing is spent on them.
constexpr size_t kMaxUser = 255;
constexpr size_t kMaxPassword = 1024;

}  // namespace

std::optional<std::string> base64Decode(std::string_view in) {
  std::string out(in.size() / 4 * 3 + 3, '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), in.data(),
                        in.size(), nullptr, &len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != in.data() + in.size())
    return std::nullopt;
  out.resize(len);
  return out;
}

std::string base64Encode(std::string_view in) {
  std::string out(sodium_base64_ENCODED_LEN(in.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(in.data()),
                    in.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

SaslStep SaslExchange::error(int code, const char* enhanced, const char* text) {
  state_ = State::kDone;
  SaslStep s;
  s.kind = SaslStep::Kind::kError;
  s.reply = Reply{code, enhanced, text};
  s.mechanism = mechanism_;
  return s;
}

SaslStep SaslExchange::challenge(std::string_view text) {
  SaslStep s;
  s.kind = SaslStep::Kind::kChallenge;
  s.challenge = text.empty() ? "" : base64Encode(text);
  s.mechanism = mechanism_;
  return s;
}

SaslStep SaslExchange::start(std::string_view arg) {
  if (state_ != State::kIdle) return error(503, "5.5.1", "Error: AUTH exchange already started");
  size_t sp = arg.find(' ');
  std::string_view mech = arg.substr(0, sp);
  std::optional<std::string_view> initial;
  if (sp != std::string_view::npos) {
    initial = arg.substr(sp + 1);
    if (initial->empty() || initial->find(' ') != std::string_view::npos)
      return error(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
  }
  if (mech.empty()) return error(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
  if (iequals(mech, "PLAIN")) {
    mechanism_ = "PLAIN";
    state_ = State::kPlain;
  } else if (iequals(mech, "LOGIN")) {
    mechanism_ = "LOGIN";
    state_ = State::kLoginUser;
  } else {
    return error(504, "5.5.4", "Unrecognized authentication type");
  }
  if (!initial) return challenge(state_ == State::kPlain ? "" : "Username:");
  // RFC 4954 4: "=" is an initial response of zero length.
  return respond(*initial == "=" ? std::string_view() : *initial);
}

SaslStep SaslExchange::respond(std::string_view line) {
  if (state_ == State::kIdle || state_ == State::kDone)
    return error(503, "5.5.1", "Error: no AUTH exchange in progress");
  if (line == "*") return error(501, "5.7.0", "Authentication cancelled");
  auto decoded = base64Decode(line);
  if (!decoded) return error(501, "5.5.2", "Invalid base64 data");
  SaslStep s;
  switch (state_) {
    case State::kPlain:
      s = plain(*decoded);
      break;
    case State::kLoginUser:
      s = loginUser(*decoded);
      break;
    case State::kLoginPassword:
      if (decoded->empty() || decoded->size() > kMaxPassword ||
          decoded->find('\0') != std::string::npos) {
        s = error(501, "5.5.2", "Invalid password");
        break;
      }
      state_ = State::kDone;
      s.kind = SaslStep::Kind::kCredentials;
      s.mechanism = mechanism_;
      s.user = std::move(user_);
      s.password = std::move(*decoded);
      break;
    case State::kIdle:
    case State::kDone:
      break;
  }
  sodium_memzero(decoded->data(), decoded->size());
  return s;
}

SaslStep SaslExchange::plain(std::string_view msg) {
  // RFC 4616 2: [authzid] NUL authcid NUL passwd, none of them containing NUL.
  size_t a = msg.find('\0');
  size_t b = a == std::string_view::npos ? a : msg.find('\0', a + 1);
  if (b == std::string_view::npos || msg.find('\0', b + 1) != std::string_view::npos)
    return error(501, "5.5.2", "Invalid PLAIN response");
  std::string_view authzid = msg.substr(0, a);
  std::string_view authcid = msg.substr(a + 1, b - a - 1);
  std::string_view passwd = msg.substr(b + 1);
  if (authcid.empty() || passwd.empty() || authcid.size() > kMaxUser ||
      passwd.size() > kMaxPassword)
    return error(501, "5.5.2", "Invalid PLAIN response");
  // Acting for another identity is not supported: only one's own (compared
  // as user names are, without case).
  if (!authzid.empty() && !iequals(authzid, authcid)) {
    SaslStep s = error(535, "5.7.8", "Authentication credentials invalid");
    s.auth_failure = true;
    s.user = authcid;
    return s;
  }
  state_ = State::kDone;
  SaslStep s;
  s.kind = SaslStep::Kind::kCredentials;
  s.mechanism = mechanism_;
  s.user = authcid;
  s.password = passwd;
  return s;
}

SaslStep SaslExchange::loginUser(std::string_view user) {
  if (user.empty() || user.size() > kMaxUser || user.find('\0') != std::string_view::npos)
    return error(501, "5.5.2", "Invalid user name");
  user_ = user;
  state_ = State::kLoginPassword;
  return challenge("Password:");
}

}  // namespace mxgate
