// DKIM verification cost per message (rsa-2048 and ed25519, 10 KB and 1 MB,
// relaxed/relaxed), against plain SHA-256 over the same bytes: the body hash
// should run near the raw hash speed (compare `openssl speed -seconds 3 sha256`).
#include <benchmark/benchmark.h>

#include <openssl/evp.h>

#include <string>

#include "filters/dkim/dkim_engine.h"
#include "filters/dkim/dkim_keys.h"
#include "gateway/smtp/message_edit.h"

namespace {

using namespace mxgate;
using namespace mxgate::dkim;

// A text message of about `size` bytes: 76-character lines, CRLF.
std::string makeMessage(size_t size) {
  std::string m =
      "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: benchmark\r\n"
      "Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@example.com>\r\n\r\n";
  const std::string line =
      "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod t\r\n";
  while (m.size() < size) m += line;
  return m;
}

struct Signed {
  std::string message;  // with its DKIM-Signature
  KeyAnswers keys;
};

Signed makeSigned(KeyType type, size_t size) {
  KeyPair pair = generateKeyPair(type, 2048);
  SigningKey key;
  key.domain = "example.com";
  key.selector = "bench";
  key.type = type;
  key.pem = pair.private_pem;
  DkimEngine engine;
  std::string message = makeMessage(size);
  Signed s;
  s.message = smtp::foldHeader("DKIM-Signature", engine.sign(message, key)) + message;
  DnsAnswer a;
  a.status = DnsStatus::kOk;
  a.records = {pair.record};
  s.keys.emplace("bench._domainkey.example.com", a);
  return s;
}

void verify(benchmark::State& state, KeyType type) {
  const Signed s = makeSigned(type, size_t(state.range(0)));
  DkimEngine engine;
  for (auto _ : state) {
    auto checks = engine.verify(s.message, s.keys);
    if (checks.size() != 1 || checks[0].outcome.result != "pass") {
      state.SkipWithError("signature did not verify");
      break;
    }
    benchmark::DoNotOptimize(checks);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(s.message.size()));
}

void BM_DkimVerifyRsa2048(benchmark::State& state) {
  verify(state, KeyType::kRsa);
}
void BM_DkimVerifyEd25519(benchmark::State& state) {
  verify(state, KeyType::kEd25519);
}
BENCHMARK(BM_DkimVerifyRsa2048)->Arg(10 << 10)->Arg(1 << 20);
BENCHMARK(BM_DkimVerifyEd25519)->Arg(10 << 10)->Arg(1 << 20);

void BM_DkimSignRsa2048(benchmark::State& state) {
  KeyPair pair = generateKeyPair(KeyType::kRsa, 2048);
  SigningKey key{"example.com", "bench", KeyType::kRsa, 2048, pair.private_pem, true};
  DkimEngine engine;
  const std::string message = makeMessage(size_t(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(engine.sign(message, key));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(message.size()));
}
BENCHMARK(BM_DkimSignRsa2048)->Arg(10 << 10)->Arg(1 << 20);

// The floor: one SHA-256 over the same bytes, no canonicalization.
void BM_Sha256(benchmark::State& state) {
  const std::string message = makeMessage(size_t(state.range(0)));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  for (auto _ : state) {
    EVP_Digest(message.data(), message.size(), md, &len, EVP_sha256(), nullptr);
    benchmark::DoNotOptimize(md);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(message.size()));
}
BENCHMARK(BM_Sha256)->Arg(10 << 10)->Arg(1 << 20);

}  // namespace
