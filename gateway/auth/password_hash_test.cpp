#include "gateway/auth/password_hash.h"

#include <gtest/gtest.h>

namespace mxgate {
namespace {

// Made with libsodium at its minimum cost (so the test is fast) and with
// crypt(3) at Debian's default yescrypt cost, both for this password.
constexpr const char* kPassword = "correct horse battery";
constexpr const char* kArgonMin =
    "$argon2id$v=19$m=8,t=1,p=1$gklOlYKakpDT9R7qC6Hpqw$RU4//7qEG4hR8p+Z1HsMCgoG7VKs4+ynIzWpngzVqXc";
constexpr const char* kYescrypt =
    "$y$j9T$tQJpHO3fubE.wnLIlIQ7v/$UqmkqzqQ991k1nwQrt6khQ56DLTseG7f5PyiNa5Bez4";

TEST(PasswordHash, Argon2idVerifies) {
  EXPECT_EQ(hashScheme(kArgonMin), HashScheme::kArgon2id);
  EXPECT_TRUE(verifyPassword(kArgonMin, kPassword));
  EXPECT_FALSE(verifyPassword(kArgonMin, "correct horse batterY"));
  EXPECT_FALSE(verifyPassword(kArgonMin, ""));
}

TEST(PasswordHash, YescryptVerifies) {
  EXPECT_EQ(hashScheme(kYescrypt), HashScheme::kYescrypt);
  EXPECT_TRUE(verifyPassword(kYescrypt, kPassword));
  EXPECT_FALSE(verifyPassword(kYescrypt, "correct horse batter"));
  // crypt(3) stops at NUL; the extra bytes must not be ignored.
  EXPECT_FALSE(verifyPassword(kYescrypt, std::string(kPassword) + std::string("\0x", 2)));
}

TEST(PasswordHash, NewHashesAreArgon2idAndVerify) {
  std::string h = hashPassword("a fresh password");
  EXPECT_EQ(h.rfind("$argon2id$v=19$m=65536,t=3,p=1$", 0), 0u) << h;
  EXPECT_EQ(checkHash(h), "");
  EXPECT_TRUE(verifyPassword(h, "a fresh password"));
  EXPECT_FALSE(verifyPassword(h, "a fresh passwore"));
  EXPECT_NE(hashPassword("a fresh password"), h) << "salted";
}

TEST(PasswordHash, DummyHashHasTheSameCostAndMatchesNothingSimple) {
  EXPECT_EQ(checkHash(dummyHash()), "");
  std::string h = hashPassword("x");
  // Same parameter block, so an unknown user costs what a known one does.
  auto params = [](const std::string& s) { return s.substr(0, s.find('$', 12)); };
  EXPECT_EQ(params(dummyHash()), params(h));
  EXPECT_FALSE(verifyPassword(dummyHash(), ""));
}

TEST(PasswordHash, RejectsOtherSchemesWithAReason) {
  EXPECT_EQ(checkHash(kArgonMin), "");
  EXPECT_EQ(checkHash(kYescrypt), "");
  for (const char* bad :
       {"$6$h9zzFx7PCaJcmSXM$Ts/IzqUq8osC2qnGslhmO7EIRF8E0YUMuzFZitZYRGyNB9PhPLew9lpRSCXItBQ0tYcq",
        "$argon2i$v=19$m=8,t=1,p=1$gklOlYKakpDT9R7qC6Hpqw$RU4", "!$y$j9T$a$b", "plaintext", "",
        "$argon2id$v=19$m=8,t=1,p=1$short", "$y$j9T$$x", "$y$j9T$salt"}) {
    EXPECT_NE(checkHash(bad), "") << bad;
    EXPECT_FALSE(verifyPassword(bad, kPassword)) << bad;
  }
  EXPECT_NE(checkHash("$6$abc$def").find("unsupported hash scheme"), std::string::npos);
  EXPECT_NE(checkHash("!locked").find("locked"), std::string::npos);
}

TEST(PasswordHash, WeakPasswords) {
  EXPECT_NE(weakPasswordReason("short", "alice").find("at least 12"), std::string::npos);
  EXPECT_NE(weakPasswordReason("alice@example.org", "Alice@Example.org"), "");
  EXPECT_NE(weakPasswordReason("aaaaaaaaaaaaaaaa", "bob"), "");
  EXPECT_EQ(weakPasswordReason("twelve chars", "bob"), "");
}

}  // namespace
}  // namespace mxgate
