#include <openssl/evp.h>
#include <openssl/pem.h>

#include <gtest/gtest.h>

#include "filters/dkim/dkim_engine.h"
#include "filters/dkim/dkim_keys.h"
#include "filters/dkim/dkim_tags.h"
#include "filters/dkim/dkim_testing.h"
#include "gateway/config/config_error.h"
#include "gateway/smtp/message_edit.h"
#include "gateway/util/strings.h"
#include "gateway/util/temp_dir.h"

namespace mxgate::dkim {
namespace {

const std::string kMessage =
    "From: Alice <alice@Example.COM>\r\n"
    "To: bob@example.net\r\n"
    "Subject: hello\r\n"
    "Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <1@example.com>\r\n"
    "List-Id: <team.example.com>\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    "  a body line with  double  spaces.\r\n";

KeyAnswers answersFor(const std::string& name, const std::string& record) {
  DnsAnswer a;
  a.status = DnsStatus::kOk;
  a.records = {record};
  return {{name, a}};
}

SigningKey keyFrom(const KeyPair& pair, KeyType type) {
  SigningKey k;
  k.domain = "example.com";
  k.selector = "sel";
  k.type = type;
  k.pem = pair.private_pem;
  return k;
}

// The signed message as it leaves: our header folded the way MessageEdit does.
std::string withSignature(const std::string& value, const std::string& message = kMessage) {
  return smtp::foldHeader("DKIM-Signature", value) + message;
}

TEST(DkimTags, ParsesTagListsAndSignatures) {
  auto tags = parseTagList(" v=1; a = rsa-sha256;\r\n\tb=ab c\r\n d; D=Ex.com ;");
  EXPECT_EQ(tags["v"], "1");
  EXPECT_EQ(tags["a"], "rsa-sha256");
  EXPECT_EQ(tags["b"], "abcd");
  EXPECT_EQ(tags["d"], "Ex.com");
  auto sigs = findSignatures(
      "DKIM-Signature: v=1; d=A.example; s=Sel1; a=ed25519-sha256; b=0123456789ab\r\n"
      "dkim-signature: v=1; s=x; b=\r\n"
      "From: a@b\r\n\r\nDKIM-Signature: in the body\r\n");
  ASSERT_EQ(sigs.size(), 2u);
  EXPECT_EQ(sigs[0].keyName(), "sel1._domainkey.a.example");
  EXPECT_EQ(sigs[0].header_b, "01234567");
  EXPECT_EQ(sigs[0].algorithm, "ed25519-sha256");
  EXPECT_EQ(sigs[1].keyName(), "");  // no d=
}

TEST(DkimTags, FromDomain) {
  EXPECT_EQ(fromDomain("From: Alice <alice@Example.COM>\r\n\r\n"), "example.com");
  EXPECT_EQ(fromDomain("From: alice@example.org (Alice <x@evil.test>)\r\n\r\n"), "example.org");
  EXPECT_EQ(fromDomain("From: \"a@b.test\" <c@d.test>\r\n\r\n"), "d.test");
  EXPECT_EQ(fromDomain("From: a@one.test, b@two.test\r\n\r\n"), "");
  EXPECT_EQ(fromDomain("From: a@one.test\r\nFrom: b@two.test\r\n\r\n"), "");
  EXPECT_EQ(fromDomain("To: a@one.test\r\n\r\n"), "");
}

TEST(DkimKeys, RecordsAndZoneLines) {
  KeyPair ed = generateKeyPair(KeyType::kEd25519, 0);
  EXPECT_EQ(ed.record.rfind("v=DKIM1; k=ed25519; p=", 0), 0u);
  EXPECT_EQ(ed.record.size(), std::string("v=DKIM1; k=ed25519; p=").size() + 44);  // 32 bytes
  EXPECT_EQ(publicKeyRecord(ed.private_pem), ed.record);
  KeyPair rsa = generateKeyPair(KeyType::kRsa, 2048);
  EXPECT_EQ(rsa.record.rfind("v=DKIM1; k=rsa; p=MIIBIjAN", 0), 0u);
  std::string line = zoneLine("example.com", "s1", rsa.record);
  EXPECT_EQ(line.rfind("s1._domainkey.example.com. IN TXT \"v=DKIM1; k=rsa; p=", 0), 0u);
  EXPECT_EQ(line.find("\" \""), 35 + 255);  // split after 255 bytes
  EXPECT_THROW(generateKeyPair(KeyType::kRsa, 512), std::runtime_error);
}

class DkimRoundTrip : public ::testing::TestWithParam<KeyType> {};

TEST_P(DkimRoundTrip, SignedMessageVerifiesAndTamperingFails) {
  const KeyType type = GetParam();
  KeyPair pair = generateKeyPair(type, 2048);
  DkimEngine engine;
  std::string value = engine.sign(kMessage, keyFrom(pair, type));
  // One line, single spaces: foldHeader may break it at any space.
  EXPECT_EQ(value.find_first_of("\r\n\t"), std::string::npos);
  EXPECT_NE(value.find("c=relaxed/relaxed"), std::string::npos);
  auto tags = parseTagList(value);
  // From is oversigned; every listed field present in the message is signed.
  EXPECT_EQ(toLower(tags["h"]), "from:to:subject:date:message-id:list-id:from");
  KeyAnswers keys = answersFor("sel._domainkey.example.com", pair.record);

  auto checks = engine.verify(withSignature(value), keys);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].outcome.result, "pass") << checks[0].outcome.reason;
  EXPECT_EQ(checks[0].outcome.domain, "example.com");
  EXPECT_EQ(checks[0].outcome.selector, "sel");
  EXPECT_EQ(checks[0].outcome.algorithm, type == KeyType::kRsa ? "rsa-sha256" : "ed25519-sha256");
  EXPECT_EQ(checks[0].outcome.header_b, tags["b"].substr(0, 8));
  EXPECT_FALSE(checks[0].weak);

  std::string body_changed = withSignature(value);
  body_changed.replace(body_changed.find("Hello Bob"), 5, "Howdy");
  checks = engine.verify(body_changed, keys);
  EXPECT_EQ(checks[0].outcome.result, "fail");
  EXPECT_EQ(checks[0].outcome.reason, "body hash mismatch");

  std::string subject_changed = withSignature(value);
  subject_changed.replace(subject_changed.find("Subject: hello"), 14, "Subject: HELLO");
  checks = engine.verify(subject_changed, keys);
  EXPECT_EQ(checks[0].outcome.result, "fail");
  EXPECT_EQ(checks[0].outcome.reason, "signature did not verify");

  // The oversigned From: a second author added later breaks the signature.
  std::string from_added = withSignature(value, "From: mallory@evil.test\r\n" + kMessage);
  EXPECT_EQ(engine.verify(from_added, keys)[0].outcome.result, "fail");

  // Relaxed canonicalization: refolding and case changes of names are harmless.
  std::string refolded = withSignature(value);
  refolded.replace(refolded.find("Subject: hello"), 14, "SUBJECT:\r\n  hello");
  EXPECT_EQ(engine.verify(refolded, keys)[0].outcome.result, "pass");
}

INSTANTIATE_TEST_SUITE_P(Algorithms, DkimRoundTrip,
                         ::testing::Values(KeyType::kRsa, KeyType::kEd25519));

TEST(DkimEngine, KeyProblemsAndDnsFailures) {
  KeyPair pair = generateKeyPair(KeyType::kEd25519, 0);
  DkimEngine engine;
  std::string signed_msg = withSignature(engine.sign(kMessage, keyFrom(pair, KeyType::kEd25519)));
  const std::string name = "sel._domainkey.example.com";
  auto run = [&](DnsStatus st, std::string record = {}) {
    DnsAnswer a;
    a.status = st;
    if (st == DnsStatus::kOk) a.records = {record};
    auto checks = engine.verify(signed_msg, {{name, a}});
    EXPECT_EQ(checks.size(), 1u);
    return checks.at(0);
  };
  auto c = run(DnsStatus::kNxDomain);
  EXPECT_EQ(c.outcome.result, "permerror");
  EXPECT_TRUE(c.key_problem);
  c = run(DnsStatus::kTimeout);
  EXPECT_EQ(c.outcome.result, "temperror");
  EXPECT_EQ(c.outcome.reason, "key lookup: timeout");
  c = run(DnsStatus::kServFail);
  EXPECT_EQ(c.outcome.result, "temperror");
  c = run(DnsStatus::kOk, "v=DKIM1; k=ed25519; p=");  // revoked
  EXPECT_EQ(c.outcome.result, "permerror");
  EXPECT_TRUE(c.key_problem);
  c = run(DnsStatus::kOk, "v=DKIM1; k=rsa; p=" + pair.record.substr(22));  // wrong type
  EXPECT_NE(c.outcome.result, "pass");
  // An answer never fetched is not looked up elsewhere.
  EXPECT_NE(engine.verify(signed_msg, {})[0].outcome.result, "pass");
}

TEST(DkimEngine, SmallRsaKeyIsWeak) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr), EVP_PKEY_CTX_free);
  ASSERT_EQ(EVP_PKEY_keygen_init(ctx.get()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 768), 1);
  EVP_PKEY* raw = nullptr;
  ASSERT_EQ(EVP_PKEY_keygen(ctx.get(), &raw), 1);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, raw, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  KeyPair pair{std::string(data, size_t(len)), ""};
  BIO_free(bio);
  EVP_PKEY_free(raw);
  pair.record = publicKeyRecord(pair.private_pem);

  DkimEngine engine;
  std::string msg = withSignature(engine.sign(kMessage, keyFrom(pair, KeyType::kRsa)));
  auto checks = engine.verify(msg, answersFor("sel._domainkey.example.com", pair.record));
  EXPECT_EQ(checks.at(0).outcome.result, "pass");
  EXPECT_TRUE(checks[0].weak);
  EXPECT_EQ(checks[0].key_bits, 768u);

  DkimEngine strict(EngineOptions{1024, 10});
  checks = strict.verify(msg, answersFor("sel._domainkey.example.com", pair.record));
  EXPECT_EQ(checks.at(0).outcome.result, "permerror");
  EXPECT_TRUE(checks[0].weak);
}

// The filter end to end: sign for a trusted client, verify through the resolver.
class DkimFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rsa_ = generateKeyPair(KeyType::kRsa, 2048);
    ed_ = generateKeyPair(KeyType::kEd25519, 0);
    dir_.write("keys/rsa.pem", rsa_.private_pem);
    dir_.write("keys/ed.pem", ed_.private_pem);
    config_ = dir_.path() + "/mxgate.toml";
  }
  std::string keysSection() const {
    return "[[filters.dkim.keys]]\ndomain = \"Example.com\"\nselector = \"r1\"\n"
           "key_file = \"keys/rsa.pem\"\n"
           "[[filters.dkim.keys]]\ndomain = \"example.com\"\nselector = \"e1\"\n"
           "key_file = \"keys/ed.pem\"\n";
  }

  mxgate::testing::TempDir dir_{"dkim"};
  std::string config_;
  KeyPair rsa_, ed_;
};

TEST_F(DkimFilterTest, SignsTrustedMailAndVerifiesIt) {
  testing::DkimHarness h(keysSection(), config_);
  h.zone().addRecord("r1._domainkey.example.com", "TXT", testing::txtValue(rsa_.record));
  h.zone().addRecord("e1._domainkey.example.com", "TXT", testing::txtValue(ed_.record));

  ScanResult out = h.run(kMessage, /*trusted=*/true);
  ASSERT_EQ(out.addedHeaders().size(), 2u);  // dual-signed: RSA and ed25519
  EXPECT_TRUE(out.contentFrozen());
  EXPECT_TRUE(out.has("DKIM_SIGNED"));
  EXPECT_FALSE(out.auth().dkim_checked);

  std::string delivered = kMessage;
  for (const auto& [name, value] : out.addedHeaders())
    delivered = smtp::foldHeader(name, value) + delivered;
  ScanResult in = h.run(delivered);
  ASSERT_EQ(in.auth().dkim.size(), 2u);
  EXPECT_TRUE(in.auth().dkim_checked);
  for (const DkimOutcome& o : in.auth().dkim) EXPECT_EQ(o.result, "pass") << o.reason;
  EXPECT_TRUE(in.has("DKIM_PASS"));
  EXPECT_EQ(in.score(), -0.5);  // one symbol for both signatures
  EXPECT_EQ(in.hits().at(0).detail, "d=example.com s=e1, d=example.com s=r1");
  EXPECT_TRUE(in.addedHeaders().empty());

  std::string tampered = delivered;
  tampered.replace(tampered.find("Hello Bob"), 5, "Pay me");
  ScanResult bad = h.run(tampered);
  EXPECT_TRUE(bad.has("DKIM_FAIL"));
  EXPECT_EQ(bad.auth().dkim.at(0).result, "fail");
}

TEST_F(DkimFilterTest, OutcomesBecomeSymbols) {
  testing::DkimHarness h(keysSection(), config_);
  ScanResult signed_out = h.run(kMessage, true);
  std::string rsa_signed =
      smtp::foldHeader("DKIM-Signature", signed_out.addedHeaders().at(0).second) + kMessage;

  ScanResult none = h.run(kMessage);
  EXPECT_TRUE(none.has("DKIM_NONE"));
  EXPECT_TRUE(none.auth().dkim_checked);
  EXPECT_TRUE(none.auth().dkim.empty());

  ScanResult nokey = h.run(rsa_signed);  // nothing in the zone: NXDOMAIN
  EXPECT_TRUE(nokey.has("DKIM_INVALID_KEY"));
  EXPECT_EQ(nokey.auth().dkim.at(0).result, "permerror");

  // (r1's NXDOMAIN is cached now: the ed25519 signature meets the timeout.)
  h.zone().addRecord("e1._domainkey.example.com", "TIMEOUT");
  ScanResult slow =
      h.run(smtp::foldHeader("DKIM-Signature", signed_out.addedHeaders().at(1).second) + kMessage);
  EXPECT_TRUE(slow.has("DKIM_TEMPERROR"));
  EXPECT_EQ(slow.auth().dkim.at(0).result, "temperror");

  ScanResult broken = h.run("DKIM-Signature: v=1; garbage\r\n" + kMessage);
  EXPECT_TRUE(broken.has("DKIM_PERMERROR"));
  EXPECT_EQ(broken.auth().dkim.at(0).result, "permerror");

  // Untrusted clients are never signed for, even for our own domain.
  EXPECT_TRUE(h.run(kMessage, false).addedHeaders().empty());
  // No key for the From domain: verified instead.
  std::string other = kMessage;
  other.replace(other.find("Example.COM"), 11, "other.test");
  ScanResult o = h.run(other, true);
  EXPECT_TRUE(o.addedHeaders().empty());
  EXPECT_TRUE(o.has("DKIM_NONE"));
}

TEST_F(DkimFilterTest, SignOnlyAndVerifyOnly) {
  testing::DkimHarness sign_only("verify = false\n" + keysSection(), config_);
  EXPECT_TRUE(sign_only.run(kMessage).hits().empty());
  EXPECT_FALSE(sign_only.run(kMessage).auth().dkim_checked);
  testing::DkimHarness verify_only("sign = false\n" + keysSection(), config_);
  ScanResult r = verify_only.run(kMessage, true);
  EXPECT_TRUE(r.addedHeaders().empty());
  EXPECT_TRUE(r.has("DKIM_NONE"));
}

TEST_F(DkimFilterTest, ConfigErrors) {
  auto fails = [&](const std::string& body, const std::string& what) {
    try {
      testing::DkimHarness h(body, config_);
      ADD_FAILURE() << "accepted: " << body;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  fails("[[filters.dkim.keys]]\ndomain = \"a.test\"\nselector = \"s\"\nkey_file = \"nope.pem\"\n",
        "cannot read");
  dir_.write("keys/junk.pem", "not a key");
  fails(
      "[[filters.dkim.keys]]\ndomain = \"a.test\"\nselector = \"s\"\n"
      "key_file = \"keys/junk.pem\"\n",
      "not a PEM private key");
  fails("[[filters.dkim.keys]]\ndomain = \"a.test\"\nkey_file = \"keys/ed.pem\"\n", "selector");
  fails(
      "[[filters.dkim.keys]]\ndomain = \"a.test\"\nselector = \"s\"\n"
      "key_file = \"keys/ed.pem\"\ncolour = 1\n",
      "colour");
  fails("verify = false\nsign = false\n", "both off");
  fails("body_canonicalization = \"loose\"\n", "body_canonicalization");
  fails("min_rsa_bits = 256\n", "min_rsa_bits");
}

}  // namespace
}  // namespace mxgate::dkim
