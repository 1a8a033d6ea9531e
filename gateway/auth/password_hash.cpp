#include "gateway/auth/password_hash.h"

#include <crypt.h>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "gateway/util/strings.h"

namespace mxgate {
namespace {

// libsodium's MODERATE time cost with its INTERACTIVE memory (64 MiB): the
// 256 MiB of MODERATE, times one verification per worker thread, is more
// memory than a mail gateway should spend on logins; this is still several
// times OWASP's minimum for argon2id (19 MiB, t=2).
constexpr unsigned long long kOpsLimit = 3;
constexpr size_t kMemLimit = 64u << 20;

// Generated once with hashPassword's cost from 32 random bytes that were
// then thrown away.
constexpr const char* kDummyHash =
    "$argon2id$v=19$m=65536,t=3,p=1$SshNxhxjk0J1At7X/wLP6w$"
    "igVZHVMffbYSsVuf+LnrK3WwES3tvEwg+jiOMJMjdF4";

void initSodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium failed to initialize");
}

bool isCryptChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '/';
}

// "$y$" params "$" salt "$" hash, each part non-empty in crypt's base64
// alphabet (crypt(3) itself re-checks the details when verifying).
bool yescryptShape(std::string_view h) {
  if (h.substr(0, 3) != "$y$") return false;
  std::string_view rest = h.substr(3);
  for (int part = 0; part < 3; ++part) {
    size_t end = part < 2 ? rest.find('$') : rest.size();
    if (end == std::string_view::npos || end == 0) return false;
    if (!std::all_of(rest.begin(), rest.begin() + end, isCryptChar)) return false;
    rest.remove_prefix(part < 2 ? end + 1 : end);
  }
  return true;
}

}  // namespace

HashScheme hashScheme(std::string_view hash) {
  if (hash.substr(0, 10) == "$argon2id$") return HashScheme::kArgon2id;
  if (yescryptShape(hash)) return HashScheme::kYescrypt;
  return HashScheme::kUnsupported;
}

const char* hashSchemeName(HashScheme s) {
  switch (s) {
    case HashScheme::kArgon2id:
      return "argon2id";
    case HashScheme::kYescrypt:
      return "yescrypt";
    case HashScheme::kUnsupported:
      break;
  }
  return "unsupported";
}

std::string checkHash(std::string_view hash) {
  switch (hashScheme(hash)) {
    case HashScheme::kArgon2id: {
      initSodium();
      std::string h(hash);
      // -1 is libsodium's answer for a string it cannot parse.
      if (h.size() >= crypto_pwhash_STRBYTES ||
          crypto_pwhash_str_needs_rehash(h.c_str(), kOpsLimit, kMemLimit) == -1)
        return "malformed argon2id hash";
      return "";
    }
    case HashScheme::kYescrypt:
      return "";
    case HashScheme::kUnsupported:
      break;
  }
  if (hash.substr(0, 9) == "$argon2i$")
    return "argon2i hashes are not accepted; set a new password (argon2id)";
  if (!hash.empty() && (hash[0] == '!' || hash[0] == '*'))
    return "a locked or disabled password; delete the user instead";
  if (hash.substr(0, 1) == "$")
    return "unsupported hash scheme (only $argon2id$ and yescrypt $y$ are accepted)";
  return "not a password hash (expected $argon2id$... or yescrypt $y$...)";
}

bool verifyPassword(const std::string& hash, std::string_view password) {
  initSodium();
  switch (hashScheme(hash)) {
    case HashScheme::kArgon2id:
      return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
    case HashScheme::kYescrypt: {
      // crypt_r stops at a NUL; a password with one cannot be what was hashed.
      if (password.find('\0') != std::string_view::npos) return false;
      auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on a worker's stack
      std::string pw(password);
      const char* out = crypt_r(pw.c_str(), hash.c_str(), data.get());
      sodium_memzero(pw.data(), pw.size());
      bool ok = out != nullptr && out[0] != '*' && std::strlen(out) == hash.size() &&
                sodium_memcmp(out, hash.data(), hash.size()) == 0;
      sodium_memzero(data.get(), sizeof(crypt_data));
      return ok;
    }
    case HashScheme::kUnsupported:
      break;
  }
  return false;
}

std::string hashPassword(std::string_view password) {
  initSodium();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), kOpsLimit, kMemLimit) != 0)
    throw std::runtime_error("argon2id hashing failed (out of memory?)");
  return out;
}

const std::string& dummyHash() {
  static const std::string h = kDummyHash;
  return h;
}

std::string weakPasswordReason(std::string_view password, std::string_view user) {
  if (password.size() < kMinPasswordLength)
    return "password too short: use at least " + std::to_string(kMinPasswordLength) + " characters";
  if (iequals(password, user)) return "password must not be the user name";
  if (std::all_of(password.begin(), password.end(), [&](char c) { return c == password[0]; }))
    return "password must not repeat one character";
  return "";
}

}  // namespace mxgate
