#include "filters/dkim/dkim_keys.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

namespace mxgate::dkim {
namespace {

using PKey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

std::string sslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

PKey parsePrivate(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), int(pem.size())),
                                                BIO_free);
  return PKey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
}

std::string base64(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, int(len));
  out.resize(n);
  return out;
}

std::string recordFor(EVP_PKEY* key) {
  if (EVP_PKEY_id(key) == EVP_PKEY_ED25519) {
    // RFC 8463 3: p= is the raw 32-byte public key, not a SubjectPublicKeyInfo.
    unsigned char raw[32];
    size_t len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1) throw std::runtime_error(sslError());
    return "v=DKIM1; k=ed25519; p=" + base64(raw, len);
  }
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key, &der);
  if (len <= 0) throw std::runtime_error(sslError());
  std::string p = base64(der, size_t(len));
  OPENSSL_free(der);
  return "v=DKIM1; k=rsa; p=" + p;
}

}  // namespace

SigningKey loadSigningKey(const std::string& path, const std::string& domain,
                          const std::string& selector) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  SigningKey k;
  k.domain = domain;
  k.selector = selector;
  k.pem = ss.str();
  PKey key = parsePrivate(k.pem);
  if (!key) throw std::runtime_error(path + " is not a PEM private key: " + sslError());
  switch (EVP_PKEY_id(key.get())) {
    case EVP_PKEY_RSA:
      k.type = KeyType::kRsa;
      k.bits = unsigned(EVP_PKEY_get_bits(key.get()));
      // RFC 8301 3.2: signers MUST use at least 1024 bits.
      if (k.bits < 1024)
        throw std::runtime_error(path + ": RSA key of " + std::to_string(k.bits) +
                                 " bits; DKIM needs at least 1024 (2048 recommended)");
      break;
    case EVP_PKEY_ED25519:
      k.type = KeyType::kEd25519;
      k.bits = 256;
      break;
    default:
      throw std::runtime_error(path + ": not an RSA or ed25519 key");
  }
  return k;
}

KeyPair generateKeyPair(KeyType type, unsigned bits) {
  if (type == KeyType::kRsa && (bits < 1024 || bits > 8192))
    throw std::runtime_error("RSA key size must be between 1024 and 8192 bits");
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(type == KeyType::kRsa ? EVP_PKEY_RSA : EVP_PKEY_ED25519, nullptr),
      EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) throw std::runtime_error(sslError());
  if (type == KeyType::kRsa && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), int(bits)) != 1)
    throw std::runtime_error(sslError());
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_keygen(ctx.get(), &raw) != 1) throw std::runtime_error(sslError());
  PKey key(raw, EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    throw std::runtime_error(sslError());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return KeyPair{std::string(data, size_t(len)), recordFor(key.get())};
}

std::string publicKeyRecord(const std::string& private_pem) {
  PKey key = parsePrivate(private_pem);
  if (!key) throw std::runtime_error("not a PEM private key: " + sslError());
  return recordFor(key.get());
}

std::string zoneLine(const std::string& domain, const std::string& selector,
                     const std::string& record) {
  std::string line = selector + "._domainkey." + domain + ". IN TXT";
  for (size_t i = 0; i < record.size(); i += 255) line += " \"" + record.substr(i, 255) + "\"";
  return line;
}

}  // namespace mxgate::dkim
