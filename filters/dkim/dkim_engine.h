// libopendkim behind a small interface: verify a message against key records
// fetched beforehand, and sign one. Blocking and CPU-bound (hashing, RSA):
// callers run it on the worker pool, never on an event loop.
//
// Thread-safe: one DKIM_LIB serves every thread, each call works on its own
// per-message handle.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/dns/dns_types.h"
#include "gateway/pipeline/types.h"

struct dkim_lib;

namespace mxgate::dkim {

// Answers of the TXT lookups for "selector._domainkey.domain" (lowercase).
// A name missing here is never looked up: libopendkim gets no system resolver.
using KeyAnswers = std::map<std::string, DnsAnswer>;

struct SignatureCheck {
  DkimOutcome outcome;
  bool key_problem = false;  // permerror caused by the key record (bad, revoked, missing)
  bool weak = false;         // rsa-sha1, or an RSA key under 1024 bits
  unsigned key_bits = 0;     // 0 when the key was not loaded
};

enum class KeyType { kRsa, kEd25519 };

struct SigningKey {
  std::string domain;  // lowercase
  std::string selector;
  KeyType type = KeyType::kRsa;
  unsigned bits = 0;  // RSA modulus size; 256 for ed25519
  std::string pem;    // PKCS#8 or traditional PEM private key
  bool relaxed_body = true;
};

struct EngineOptions {
  // RSA keys smaller than this are permerror ("key too small").
  unsigned min_rsa_bits = 512;
  // Signatures past this many in one message are not checked (neutral).
  size_t max_signatures = 10;
};

class DkimEngine {
 public:
  explicit DkimEngine(EngineOptions options = {});
  ~DkimEngine();
  DkimEngine(const DkimEngine&) = delete;
  DkimEngine& operator=(const DkimEngine&) = delete;

  const EngineOptions& options() const { return options_; }

  // One result per DKIM-Signature field, in order. message: CRLF line ends.
  std::vector<SignatureCheck> verify(std::string_view message, const KeyAnswers& keys) const;

  // The DKIM-Signature value (without "DKIM-Signature:"), on one line with
  // single spaces between tags, so that folding at spaces (foldHeader)
  // leaves its relaxed canonical form, and so its signature, unchanged.
  // Throws std::runtime_error when libopendkim cannot sign.
  std::string sign(std::string_view message, const SigningKey& key) const;

  // Header fields signed (RFC 6376 5.4.1); From is also oversigned.
  static const std::vector<std::string>& signedHeaders();

 private:
  EngineOptions options_;
  dkim_lib* lib_;
};

}  // namespace mxgate::dkim
