// Password hashes for SMTP AUTH: argon2id through libsodium (what mxgatectl
// writes) and crypt(3) yescrypt ("$y$...", what Debian's passwd writes), so
// hashes from /etc/shadow can be reused as they are.
//
// Hashing and verifying are slow on purpose (tens to hundreds of
// milliseconds, 64 MiB for argon2id): call them from a WorkerPool, never on
// an event loop.
#pragma once

#include <string>
#include <string_view>

namespace mxgate {

enum class HashScheme { kUnsupported, kArgon2id, kYescrypt };

// The scheme a stored hash uses, judged by its prefix and shape.
HashScheme hashScheme(std::string_view hash);
const char* hashSchemeName(HashScheme s);

// An empty string when `hash` is a well-formed argon2id or yescrypt hash,
// else why not (for file:line messages).
std::string checkHash(std::string_view hash);

// True when password matches hash. False for a malformed or unsupported hash.
// Thread-safe.
bool verifyPassword(const std::string& hash, std::string_view password);

// A new argon2id hash ($argon2id$v=19$m=65536,t=3,p=1$...). Throws
// std::runtime_error when libsodium cannot allocate its memory.
std::string hashPassword(std::string_view password);

// An argon2id hash with the same cost as hashPassword's, of a password nobody
// knows. Unknown users are verified against it, so a failure for a missing
// user takes as long as one for a wrong password.
const std::string& dummyHash();

// Passwords shorter than this are refused by mxgatectl.
inline constexpr size_t kMinPasswordLength = 12;
// Why a new password is too weak, or empty if it is acceptable.
std::string weakPasswordReason(std::string_view password, std::string_view user);

}  // namespace mxgate
