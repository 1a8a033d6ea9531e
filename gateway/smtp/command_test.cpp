#include "gateway/smtp/command.h"

#include <gtest/gtest.h>

namespace mxgate::smtp {
namespace {

// parsePath with the error flattened to "code enhanced" ("ok" on success).
std::string pathResult(std::string_view arg, std::string_view keyword, bool utf8 = false,
                       Path* out = nullptr) {
  Path local;
  auto e = parsePath(arg, keyword, utf8, out ? out : &local);
  if (!e) return "ok";
  return std::to_string(e->code) + " " + e->enhanced;
}

std::string mailParams(std::string_view params, uint64_t max_size, Envelope* env) {
  auto e = parseMailParams(params, max_size, env);
  if (!e) return "ok";
  return std::to_string(e->code) + " " + e->enhanced;
}

std::string mailParams(std::string_view params, uint64_t max_size = 0) {
  Envelope env;
  return mailParams(params, max_size, &env);
}

std::string rcptParams(std::string_view params, Recipient* rcpt = nullptr) {
  Recipient local;
  auto e = parseRcptParams(params, rcpt ? rcpt : &local);
  if (!e) return "ok";
  return std::to_string(e->code) + " " + e->enhanced;
}

TEST(ParseCommand, SplitsVerbAndArgument) {
  Command c = parseCommand("MAIL FROM:<a@example.org> SIZE=10");
  EXPECT_EQ(c.verb, Verb::kMail);
  EXPECT_EQ(c.word, "MAIL");
  EXPECT_EQ(c.arg, "FROM:<a@example.org> SIZE=10");
}

TEST(ParseCommand, VerbsAreCaseInsensitive) {
  EXPECT_EQ(parseCommand("ehlo client.example").verb, Verb::kEhlo);
  EXPECT_EQ(parseCommand("Rcpt TO:<b@x.example>").verb, Verb::kRcpt);
  EXPECT_EQ(parseCommand("StartTLS").verb, Verb::kStartTls);
  EXPECT_EQ(parseCommand("bdat 10 LAST").verb, Verb::kBdat);
  EXPECT_EQ(parseCommand("data").word, "data");
}

TEST(ParseCommand, TrimsTrailingAndExtraLeadingSpaceOfTheArgument) {
  Command c = parseCommand("HELO   client.example  \t");
  EXPECT_EQ(c.verb, Verb::kHelo);
  EXPECT_EQ(c.arg, "client.example");
  Command q = parseCommand("QUIT   ");
  EXPECT_EQ(q.verb, Verb::kQuit);
  EXPECT_EQ(q.arg, "");
}

TEST(ParseCommand, EmptyAndUnknownLines) {
  EXPECT_EQ(parseCommand("").verb, Verb::kEmpty);
  EXPECT_EQ(parseCommand("   \t").verb, Verb::kEmpty);
  Command c = parseCommand("XYZZY plugh");
  EXPECT_EQ(c.verb, Verb::kUnknown);
  EXPECT_EQ(c.word, "XYZZY");
  EXPECT_EQ(c.arg, "plugh");
  // A verb must match whole: MAILX is not MAIL, and a verb glued to its
  // argument is not recognised.
  EXPECT_EQ(parseCommand("MAILX FROM:<>").verb, Verb::kUnknown);
  EXPECT_EQ(parseCommand("MAIL:FROM:<>").verb, Verb::kUnknown);
}

TEST(ParsePath, MailAndRcptAddresses) {
  Path p;
  EXPECT_EQ(pathResult("FROM:<alice@example.org>", "FROM", false, &p), "ok");
  EXPECT_EQ(p.address, "alice@example.org");
  EXPECT_EQ(p.params, "");
  EXPECT_EQ(pathResult("TO:<bob@example.org>", "TO", false, &p), "ok");
  EXPECT_EQ(p.address, "bob@example.org");
  EXPECT_EQ(pathResult("from:<a@b.example>", "FROM"), "ok") << "keyword is case-insensitive";
}

TEST(ParsePath, NullPathOnlyForMail) {
  Path p;
  p.address = "stale";
  EXPECT_EQ(pathResult("FROM:<>", "FROM", false, &p), "ok");
  EXPECT_EQ(p.address, "");
  EXPECT_EQ(pathResult("TO:<>", "TO"), "501 5.1.3");
}

TEST(ParsePath, QuotedLocalParts) {
  Path p;
  EXPECT_EQ(pathResult("FROM:<\"\"@example.org>", "FROM", false, &p), "ok");
  EXPECT_EQ(p.address, "\"\"@example.org");
  EXPECT_EQ(pathResult("TO:<\"a b\"@x.example>", "TO", false, &p), "ok");
  EXPECT_EQ(p.address, "\"a b\"@x.example");
  // '>' and an escaped quote inside the quoted part do not end the path.
  EXPECT_EQ(pathResult("TO:<\"a>b\"@x.example> NOTIFY=NEVER", "TO", false, &p), "ok");
  EXPECT_EQ(p.address, "\"a>b\"@x.example");
  EXPECT_EQ(p.params, "NOTIFY=NEVER");
  EXPECT_EQ(pathResult("TO:<\"a\\\"b\"@x.example>", "TO", false, &p), "ok");
  EXPECT_EQ(p.address, "\"a\\\"b\"@x.example");
  // An unterminated quote swallows the closing bracket.
  EXPECT_EQ(pathResult("TO:<\"ab@x.example>", "TO"), "501 5.5.4");
}

TEST(ParsePath, SourceRouteIsDiscarded) {
  Path p;
  EXPECT_EQ(pathResult("TO:<@a.example,@b.example:u@c.example>", "TO", false, &p), "ok");
  EXPECT_EQ(p.address, "u@c.example");
  EXPECT_EQ(pathResult("FROM:<@a.example:u@c.example>", "FROM", false, &p), "ok");
  EXPECT_EQ(p.address, "u@c.example");
  EXPECT_EQ(pathResult("TO:<@a.example,@b.example>", "TO"), "501 5.1.3") << "route without colon";
}

TEST(ParsePath, SpaceAfterColonIsAccepted) {
  Path p;
  EXPECT_EQ(pathResult("FROM: <a@example.org>", "FROM", false, &p), "ok");
  EXPECT_EQ(p.address, "a@example.org");
  EXPECT_EQ(pathResult("TO:  <b@example.org>", "TO", false, &p), "ok");
  EXPECT_EQ(p.address, "b@example.org");
}

TEST(ParsePath, SyntaxErrors) {
  EXPECT_EQ(pathResult("FROM:a@example.org", "FROM"), "501 5.5.4") << "missing brackets";
  EXPECT_EQ(pathResult("FROM:<a@example.org", "FROM"), "501 5.5.4") << "missing '>'";
  EXPECT_EQ(pathResult("FROM:a@example.org>", "FROM"), "501 5.5.4");
  EXPECT_EQ(pathResult("FROM:<a@example.org>x", "FROM"), "501 5.5.4") << "trailing garbage";
  EXPECT_EQ(pathResult("FROM:<a@example.org>>", "FROM"), "501 5.5.4");
  EXPECT_EQ(pathResult("FROM <a@example.org>", "FROM"), "501 5.5.4") << "space before colon";
  EXPECT_EQ(pathResult("FROM:", "FROM"), "501 5.5.4");
  EXPECT_EQ(pathResult("FROM", "FROM"), "501 5.5.4");
  EXPECT_EQ(pathResult("TO:<a@example.org>", "FROM"), "501 5.5.4") << "wrong keyword";
  EXPECT_EQ(pathResult("TOO:<a@example.org>", "TO"), "501 5.5.4");
}

TEST(ParsePath, BadAddressesUseTheRightEnhancedCode) {
  EXPECT_EQ(pathResult("FROM:<a..b@example.org>", "FROM"), "501 5.1.7");
  EXPECT_EQ(pathResult("TO:<a..b@example.org>", "TO"), "501 5.1.3");
  EXPECT_EQ(pathResult("TO:<nodomain>", "TO"), "501 5.1.3");
  EXPECT_EQ(pathResult("TO:<a@exa mple.org>", "TO"), "501 5.1.3");
}

TEST(ParsePath, BarePostmasterOnlyForRcpt) {
  Path p;
  EXPECT_EQ(pathResult("TO:<postmaster>", "TO", false, &p), "ok");
  EXPECT_EQ(p.address, "postmaster");
  EXPECT_EQ(pathResult("TO:<PostMaster>", "TO", false, &p), "ok");
  EXPECT_EQ(p.address, "PostMaster");
  EXPECT_EQ(pathResult("FROM:<postmaster>", "FROM"), "501 5.1.7");
  EXPECT_EQ(pathResult("TO:<postmasters>", "TO"), "501 5.1.3");
}

TEST(ParsePath, Utf8AddressesNeedUtf8Mode) {
  const std::string addr = "δοκιμή@παράδειγμα.δοκιμή";
  Path p;
  EXPECT_EQ(pathResult("TO:<" + addr + ">", "TO", true, &p), "ok");
  EXPECT_EQ(p.address, addr);
  EXPECT_EQ(pathResult("TO:<" + addr + ">", "TO", false), "501 5.1.3");
  EXPECT_EQ(pathResult("FROM:<用户@例子.广告>", "FROM", true, &p), "ok");
  EXPECT_EQ(pathResult("FROM:<用户@例子.广告>", "FROM", false), "501 5.1.7");
}

TEST(ParsePath, ParamsFollowThePath) {
  Path p;
  EXPECT_EQ(pathResult("FROM:<> BODY=8BITMIME  SIZE=100", "FROM", false, &p), "ok");
  EXPECT_EQ(p.address, "");
  EXPECT_EQ(p.params, "BODY=8BITMIME  SIZE=100");
}

TEST(ParsePath, ControlCharactersAreRefused) {
  EXPECT_EQ(pathResult(std::string("TO:<a\x01@example.org>"), "TO"), "501 5.1.3");
  EXPECT_EQ(pathResult(std::string("TO:<\"a\x7f\"@example.org>"), "TO"), "501 5.1.3");
  EXPECT_EQ(pathResult(std::string("TO:<\"a\tb\"@example.org>"), "TO"), "501 5.1.3");
}

TEST(IsValidMailbox, DotStringsAndDomains) {
  EXPECT_TRUE(isValidMailbox("a@b.example", false));
  EXPECT_TRUE(isValidMailbox("first.last+tag@sub.example.org", false));
  EXPECT_TRUE(isValidMailbox("!#$%&'*+-/=?^_`{|}~@x.example", false));
  EXPECT_TRUE(isValidMailbox("a@localhost", false));
  EXPECT_FALSE(isValidMailbox("a", false));
  EXPECT_FALSE(isValidMailbox("a@", false));
  EXPECT_FALSE(isValidMailbox("@b.example", false));
  EXPECT_FALSE(isValidMailbox(".a@b.example", false));
  EXPECT_FALSE(isValidMailbox("a.@b.example", false));
  EXPECT_FALSE(isValidMailbox("a..b@b.example", false));
  EXPECT_FALSE(isValidMailbox("a@b..example", false));
  EXPECT_FALSE(isValidMailbox("a@b.example.", false));
  EXPECT_FALSE(isValidMailbox("a@-b.example", false));
  EXPECT_FALSE(isValidMailbox("a@b-.example", false));
  EXPECT_FALSE(isValidMailbox("a@b_c.example", false));
  EXPECT_FALSE(isValidMailbox("a@b@c.example", false));
  EXPECT_FALSE(isValidMailbox("a b@c.example", false));
}

TEST(IsValidMailbox, LengthLimits) {
  EXPECT_TRUE(isValidMailbox(std::string(64, 'a') + "@x.example", false));
  EXPECT_FALSE(isValidMailbox(std::string(65, 'a') + "@x.example", false));
  EXPECT_TRUE(isValidMailbox("a@" + std::string(63, 'b') + ".example", false));
  EXPECT_FALSE(isValidMailbox("a@" + std::string(64, 'b') + ".example", false));
}

TEST(IsValidMailbox, QuotedAndLiterals) {
  EXPECT_TRUE(isValidMailbox("\"\"@example.org", false));
  EXPECT_TRUE(isValidMailbox("\"a b\"@x.example", false));
  EXPECT_TRUE(isValidMailbox("\"a\\\\b\"@x.example", false));
  EXPECT_FALSE(isValidMailbox("\"a\"b\"@x.example", false));
  EXPECT_FALSE(isValidMailbox("\"ab@x.example", false));
  EXPECT_TRUE(isValidMailbox("a@[192.0.2.1]", false));
  EXPECT_TRUE(isValidMailbox("a@[IPv6:2001:db8::1]", false));
  EXPECT_FALSE(isValidMailbox("a@[192.0.2.1", false));
  EXPECT_FALSE(isValidMailbox("a@[]", false));
}

TEST(IsValidMailbox, Utf8OnlyWhenAllowed) {
  EXPECT_TRUE(isValidMailbox("jörg@bücher.example", true));
  EXPECT_FALSE(isValidMailbox("jörg@bücher.example", false));
  EXPECT_FALSE(isValidMailbox("jorg@bücher.example", false));
  EXPECT_TRUE(isValidMailbox("\"jö rg\"@x.example", true));
  EXPECT_FALSE(isValidMailbox("\"jö rg\"@x.example", false));
}

TEST(ParseMailParams, SizeWithinAndOverTheLimit) {
  Envelope env;
  EXPECT_EQ(mailParams("SIZE=1000", 2000, &env), "ok");
  EXPECT_EQ(env.declared_size, 1000u);
  EXPECT_EQ(mailParams("SIZE=2000", 2000), "ok");
  EXPECT_EQ(mailParams("SIZE=2001", 2000), "552 5.3.4");
  EXPECT_EQ(mailParams("size=99999999999", 0), "ok") << "0 means no limit";
  EXPECT_EQ(mailParams("SIZE=", 2000), "501 5.5.4");
  EXPECT_EQ(mailParams("SIZE", 2000), "501 5.5.4");
  EXPECT_EQ(mailParams("SIZE=12k", 2000), "501 5.5.4");
  EXPECT_EQ(mailParams("SIZE=-1", 2000), "501 5.5.4");
  EXPECT_EQ(mailParams("SIZE=99999999999999999999999", 0), "501 5.5.4") << "overflow";
}

TEST(ParseMailParams, Body) {
  Envelope env;
  EXPECT_EQ(mailParams("BODY=7BIT", 0, &env), "ok");
  EXPECT_EQ(env.body, "7BIT");
  EXPECT_EQ(mailParams("body=8bitmime", 0, &env), "ok");
  EXPECT_EQ(env.body, "8BITMIME");
  EXPECT_EQ(mailParams("BODY=BINARYMIME"), "501 5.5.4");
  EXPECT_EQ(mailParams("BODY=8BIT"), "501 5.5.4");
  EXPECT_EQ(mailParams("BODY"), "501 5.5.4");
  EXPECT_EQ(mailParams("BODY="), "501 5.5.4");
}

TEST(ParseMailParams, Smtputf8TakesNoValue) {
  Envelope env;
  EXPECT_EQ(mailParams("SMTPUTF8", 0, &env), "ok");
  EXPECT_TRUE(env.smtputf8);
  EXPECT_EQ(mailParams("SMTPUTF8=yes"), "501 5.5.4");
  EXPECT_EQ(mailParams("SMTPUTF8="), "501 5.5.4");
}

TEST(ParseMailParams, RetAndEnvid) {
  Envelope env;
  EXPECT_EQ(mailParams("RET=hdrs ENVID=QQ314159", 0, &env), "ok");
  EXPECT_EQ(env.ret, "HDRS");
  EXPECT_EQ(env.envid, "QQ314159");
  EXPECT_EQ(mailParams("RET=FULL", 0, &env), "ok");
  EXPECT_EQ(env.ret, "FULL");
  EXPECT_EQ(mailParams("RET=NONE"), "501 5.5.4");
  EXPECT_EQ(mailParams("RET"), "501 5.5.4");
  // xtext: "+XX" hex escapes; '=' and bare '+' are not allowed.
  EXPECT_EQ(mailParams("ENVID=a+2Bb+3Dc", 0, &env), "ok");
  EXPECT_EQ(env.envid, "a+2Bb+3Dc");
  EXPECT_EQ(mailParams("ENVID=a+2"), "501 5.5.4");
  EXPECT_EQ(mailParams("ENVID=a+ZZ"), "501 5.5.4");
  EXPECT_EQ(mailParams("ENVID=a=b"), "501 5.5.4");
  EXPECT_EQ(mailParams("ENVID="), "501 5.5.4");
  EXPECT_EQ(mailParams("ENVID=" + std::string(101, 'x')), "501 5.5.4");
  EXPECT_EQ(mailParams("ENVID=" + std::string(100, 'x')), "ok");
}

TEST(ParseMailParams, AuthIsAcceptedAndIgnored) {
  EXPECT_EQ(mailParams("AUTH=<>"), "ok");
  EXPECT_EQ(mailParams("AUTH=user+40example.org"), "ok");
  EXPECT_EQ(mailParams("AUTH"), "501 5.5.4");
}

TEST(ParseMailParams, UnknownParameterIs555) {
  EXPECT_EQ(mailParams("FOO=bar"), "555 5.5.4");
  EXPECT_EQ(mailParams("SIZE=10 XYZ"), "555 5.5.4");
  Envelope env;
  auto e = parseMailParams("X-THING=1", 0, &env);
  ASSERT_TRUE(e);
  EXPECT_NE(e->text.find("X-THING"), std::string::npos) << e->text;
}

TEST(ParseMailParams, SeveralParamsAndSyntax) {
  Envelope env;
  EXPECT_EQ(mailParams("SIZE=10  BODY=8BITMIME SMTPUTF8", 100, &env), "ok");
  EXPECT_EQ(env.declared_size, 10u);
  EXPECT_EQ(env.body, "8BITMIME");
  EXPECT_TRUE(env.smtputf8);
  EXPECT_EQ(mailParams(""), "ok");
  EXPECT_EQ(mailParams("=x"), "501 5.5.4");
  EXPECT_EQ(mailParams("SI!ZE=1"), "501 5.5.4");
}

TEST(ParseRcptParams, NotifyCombinations) {
  Recipient r;
  EXPECT_EQ(rcptParams("NOTIFY=SUCCESS,FAILURE,DELAY", &r), "ok");
  EXPECT_EQ(r.notify, "SUCCESS,FAILURE,DELAY");
  EXPECT_EQ(rcptParams("notify=failure", &r), "ok");
  EXPECT_EQ(r.notify, "failure");
  EXPECT_EQ(rcptParams("NOTIFY=NEVER", &r), "ok");
  EXPECT_EQ(r.notify, "NEVER");
  EXPECT_EQ(rcptParams("NOTIFY=NEVER,SUCCESS"), "501 5.5.4");
  EXPECT_EQ(rcptParams("NOTIFY=DELAY,NEVER"), "501 5.5.4");
  EXPECT_EQ(rcptParams("NOTIFY=SOMETIMES"), "501 5.5.4");
  EXPECT_EQ(rcptParams("NOTIFY=SUCCESS,"), "501 5.5.4");
  EXPECT_EQ(rcptParams("NOTIFY="), "501 5.5.4");
  EXPECT_EQ(rcptParams("NOTIFY"), "501 5.5.4");
}

TEST(ParseRcptParams, Orcpt) {
  Recipient r;
  EXPECT_EQ(rcptParams("ORCPT=rfc822;bob+40example.org NOTIFY=DELAY", &r), "ok");
  EXPECT_EQ(r.orcpt, "rfc822;bob+40example.org");
  EXPECT_EQ(r.notify, "DELAY");
  EXPECT_EQ(rcptParams("ORCPT=bob@example.org"), "501 5.5.4") << "no addr-type";
  EXPECT_EQ(rcptParams("ORCPT=;bob"), "501 5.5.4");
  EXPECT_EQ(rcptParams("ORCPT=rfc822;a=b"), "501 5.5.4") << "not xtext";
  EXPECT_EQ(rcptParams("ORCPT"), "501 5.5.4");
}

TEST(ParseRcptParams, OrcptAddrTypeMustBeAnAtom) {
  // The addr-type is an atom (RFC 3461 4.2). Control characters in it would
  // otherwise be stored and later break the spool's tab-separated envelope.
  EXPECT_EQ(rcptParams("ORCPT=rfc\t822;bob"), "501 5.5.4");
  EXPECT_EQ(rcptParams(std::string("ORCPT=rfc\x01;bob")), "501 5.5.4");
  EXPECT_EQ(rcptParams("ORCPT=utf-8;bob"), "ok");
}

TEST(ParseRcptParams, UnknownParameterIs555) {
  EXPECT_EQ(rcptParams("XFORWARD=1"), "555 5.5.4");
  EXPECT_EQ(rcptParams("SIZE=10"), "555 5.5.4") << "MAIL-only parameter";
  EXPECT_EQ(rcptParams(""), "ok");
}

TEST(AddressParts, DomainOfAndLocalPartOf) {
  EXPECT_EQ(domainOf("User@Example.ORG"), "example.org");
  EXPECT_EQ(domainOf("postmaster"), "");
  EXPECT_EQ(domainOf("\"a@b\"@C.example"), "c.example");
  EXPECT_EQ(localPartOf("User@Example.ORG"), "User");
  EXPECT_EQ(localPartOf("postmaster"), "postmaster");
  EXPECT_EQ(localPartOf("\"a@b\"@c.example"), "\"a@b\"");
  EXPECT_EQ(toLower("MiXeD"), "mixed");
}

}  // namespace
}  // namespace mxgate::smtp
