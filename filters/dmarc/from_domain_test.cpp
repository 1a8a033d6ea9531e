#include "filters/dmarc/from_domain.h"

#include <gtest/gtest.h>

namespace mxgate::dmarc {
namespace {

using V = std::vector<std::string>;

V strict(std::string_view value) {
  bool lenient = true;
  V out = parseFromValue(value, &lenient);
  EXPECT_FALSE(lenient) << value;
  return out;
}

TEST(DmarcFromDomain, MailboxForms) {
  EXPECT_EQ(strict("joe@Example.COM"), V{"example.com"});
  EXPECT_EQ(strict("Joe <joe@example.com>"), V{"example.com"});
  EXPECT_EQ(strict("\"Doe, Joe\" <joe@example.com> (work)"), V{"example.com"});
  EXPECT_EQ(strict("(c) joe . doe @ example . com"), V{"example.com"});
  EXPECT_EQ(strict("<@relay.test:joe@example.com>"), V{"example.com"});
  EXPECT_EQ(strict("\"joe@evil.test\"@example.com"), V{"example.com"});
  EXPECT_EQ(strict("a@x.test,, b@y.test, \"c\" <c@X.test>"), (V{"x.test", "y.test"}));
  EXPECT_EQ(strict("team: a@x.test, b@y.test;"), (V{"x.test", "y.test"}));
  EXPECT_EQ(strict("undisclosed:;"), V{});
  EXPECT_EQ(strict("joe@[192.0.2.1]"), V{});
}

TEST(DmarcFromDomain, LenientScanFindsEveryDomain) {
  bool lenient = false;
  EXPECT_EQ(parseFromValue("Joe joe@example.com", &lenient), V{"example.com"});
  EXPECT_TRUE(lenient);
  EXPECT_EQ(parseFromValue("<a@x.test> bank.test <b@bank.test", &lenient),
            (V{"x.test", "bank.test"}));
  EXPECT_EQ(parseFromValue("\"x@quoted.test\" (y@comment.test) <z@real.test", &lenient),
            V{"real.test"});
  EXPECT_EQ(parseFromValue("nobody", &lenient), V{});
  // A dot-atom cannot end in a dot, but the domain is still plain.
  EXPECT_EQ(parseFromValue("joe@example.com.", &lenient), V{"example.com"});
  EXPECT_TRUE(lenient);
}

TEST(DmarcFromDomain, NormalizeDomain) {
  EXPECT_EQ(normalizeDomain("Example.COM."), "example.com");
  EXPECT_EQ(normalizeDomain("bücher.example"), "xn--bcher-kva.example");
  EXPECT_EQ(normalizeDomain("a..b"), std::nullopt);
  EXPECT_EQ(normalizeDomain(".a.b"), std::nullopt);
  EXPECT_EQ(normalizeDomain(""), std::nullopt);
  EXPECT_EQ(normalizeDomain("exa mple.com"), std::nullopt);
  EXPECT_EQ(normalizeDomain(std::string(64, 'a') + ".com"), std::nullopt);
}

TEST(DmarcFromDomain, EveryFromFieldOfTheMessage) {
  auto f = fromDomains(
      "Subject: x\r\nFrom: a@one.test\r\nfrom: B <b@two.test>,\r\n c@one.test\r\n\r\nFrom: "
      "body@three.test\r\n");
  EXPECT_EQ(f.fields, 2u);
  EXPECT_EQ(f.domains, (V{"one.test", "two.test"}));
  EXPECT_FALSE(f.lenient);
  f = fromDomains("To: x@y.test\r\n\r\nbody\r\n");
  EXPECT_EQ(f.fields, 0u);
  EXPECT_TRUE(f.domains.empty());
}

}  // namespace
}  // namespace mxgate::dmarc
