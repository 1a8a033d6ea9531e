// DKIM keys: loading a signing key from its PEM file, making new key pairs
// and the DNS TXT record that publishes the public half (RFC 6376 3.6.1,
// RFC 8463 for ed25519).
#pragma once

#include <string>

#include "filters/dkim/dkim_engine.h"

namespace mxgate::dkim {

// Reads and checks a PEM private key (RSA of at least 1024 bits, or ed25519).
// Throws std::runtime_error saying what is wrong with the file.
SigningKey loadSigningKey(const std::string& path, const std::string& domain,
                          const std::string& selector);

struct KeyPair {
  std::string private_pem;  // PKCS#8
  std::string record;       // "v=DKIM1; k=rsa; p=..."
};

// REQUIRES for RSA: 1024 <= bits <= 8192. Throws std::runtime_error.
KeyPair generateKeyPair(KeyType type, unsigned bits);

// The public key record ("v=DKIM1; k=...; p=...") for a PEM private key.
std::string publicKeyRecord(const std::string& private_pem);

// `selector._domainkey.domain. IN TXT "..." "..."`: the record cut into
// character-strings of at most 255 bytes (RFC 1035 3.3.14), for a zone file.
std::string zoneLine(const std::string& domain, const std::string& selector,
                     const std::string& record);

}  // namespace mxgate::dkim
