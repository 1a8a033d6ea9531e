#include "filters/abuse/abuse_filter.h"

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>

#include "gateway/config/table_reader.h"
#include "gateway/pipeline/symbol_table.h"
#include "gateway/pipeline/testing.h"
#include "store/kv_store.h"

namespace mxgate {
namespace {

using Kind = StageResult::Kind;
using std::chrono::minutes;
using std::chrono::seconds;

// 2023-11-14 22:13:20 UTC
constexpr int64_t kStart = 1'700'000'000;

// The filter built from a [filters.abuse] body, with a clock the test moves.
class AbuseHarness {
 public:
  explicit AbuseHarness(const std::string& body, KvStore* store = nullptr)
      : store_(store ? store : owned_.get()) {
    std::istringstream in("[filters.abuse]\n" + body);
    doc_ = toml::parse(in, "mxgate.toml");
    TableReader root(doc_, "");
    TableReader filters = root.getTable("filters");
    TableReader config = filters.getTable("abuse");
    filter_ = makeAbuseFilter(config, store_, [this] { return now_; });
    config.finish();
    for (const SymbolSpec& s : abuseFilterFactory().spec().symbols)
      symbols_.declare(s.name, {s.default_weight, s.description, "abuse"});
    symbols_.declare("LIST_ALLOW_IP", {-20, "", "lists"});
  }

  // One connection from ip; returns the connect result and ends the session
  // with stats (a good session by default).
  StageResult connect(const std::string& ip, SessionStats stats = {1, 0, 0, 0, false}) {
    SessionInfo session;
    session.id = ++next_id_;
    session.client_ip = asio::ip::make_address(ip);
    session.trusted = trusted;
    session.auth_user = auth_user;
    Envelope envelope;
    result_.clear();
    if (allow_listed) result_.addHit({"LIST_ALLOW_IP", -20, "", "lists"});
    FilterContext ctx(session, envelope, symbols_, result_);
    ctx.setFilterName("abuse");
    StageResult r = testing::runCheck(*filter_, Stage::kConnect, ctx);
    filter_->sessionEnded(session, stats);
    return r;
  }
  StageResult badSession(const std::string& ip) { return connect(ip, SessionStats{}); }

  void advance(std::chrono::system_clock::duration d) { now_ += d; }
  int64_t nowUnix() const {
    return std::chrono::duration_cast<seconds>(now_.time_since_epoch()).count();
  }
  KvStore& store() { return *store_; }
  const ScanResult& result() const { return result_; }

  bool trusted = false;
  bool allow_listed = false;
  std::string auth_user;  // set on every session when not empty

 private:
  std::unique_ptr<KvStore> owned_ = openMemoryStore();
  KvStore* store_;
  toml::value doc_;
  std::unique_ptr<Filter> filter_;
  SymbolTable symbols_;
  ScanResult result_;
  std::chrono::system_clock::time_point now_{seconds(kStart)};
  uint64_t next_id_ = 0;
};

TEST(AbuseRate, BlocksAtRatePlusOne) {
  AbuseHarness h("connection_rate = 5\n");
  for (int i = 0; i < 5; ++i) ASSERT_EQ(h.connect("192.0.2.1").kind, Kind::kContinue) << i;
  StageResult r = h.connect("192.0.2.1");
  EXPECT_EQ(r.kind, Kind::kTempfail);
  EXPECT_EQ(r.reply.code, 421);
  EXPECT_EQ(r.reply.enhanced, "4.7.0");
  EXPECT_TRUE(r.disconnect);
  EXPECT_EQ(r.reply.text,
            "Too many connections or failed sessions from 192.0.2.1; "
            "blocked until 2023-11-14 23:13:20 UTC");
  EXPECT_TRUE(h.result().has("ABUSE_CONNECTION_RATE"));
  EXPECT_EQ(h.result().hits()[0].detail, "connection rate: 6 in 1m");

  r = h.connect("192.0.2.1");
  EXPECT_EQ(r.kind, Kind::kTempfail);
  EXPECT_TRUE(h.result().has("ABUSE_BLOCKED"));
  EXPECT_EQ(h.result().hits()[0].detail, "connection rate: 6 in 1m");
  // Other clients are unaffected.
  EXPECT_EQ(h.connect("192.0.2.2").kind, Kind::kContinue);
}

TEST(AbuseRate, WindowExpiryUncounts) {
  AbuseHarness h("connection_rate = 5\n");
  for (int i = 0; i < 5; ++i) h.connect("2001:db8::1");
  h.advance(minutes(2));  // two windows: nothing left
  for (int i = 0; i < 5; ++i) ASSERT_EQ(h.connect("2001:db8::1").kind, Kind::kContinue) << i;
  // Half a window later the previous bucket weighs half: 2.5 + 2 fits, + 3 does not.
  h.advance(seconds(90));
  EXPECT_EQ(h.connect("2001:db8::1").kind, Kind::kContinue);
  EXPECT_EQ(h.connect("2001:db8::1").kind, Kind::kContinue);
  EXPECT_EQ(h.connect("2001:db8::1").kind, Kind::kTempfail);
}

TEST(AbuseRate, ZeroDisables) {
  AbuseHarness h("connection_rate = 0\n");
  for (int i = 0; i < 200; ++i) ASSERT_EQ(h.connect("192.0.2.1").kind, Kind::kContinue);
}

TEST(AbuseRate, V4MappedCountsAsV4) {
  AbuseHarness h("connection_rate = 2\n");
  h.connect("192.0.2.1");
  h.connect("::ffff:192.0.2.1");
  StageResult r = h.connect("192.0.2.1");
  EXPECT_EQ(r.kind, Kind::kTempfail);
  EXPECT_TRUE(h.store().get(kAbuseBlocksBucket, "192.0.2.1").has_value());
}

TEST(AbuseSessions, BadSessionsBlock) {
  AbuseHarness h("bad_session_limit = 3\n");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(h.badSession("192.0.2.7").kind, Kind::kContinue);
  EXPECT_TRUE(listBlocks(h.store(), h.nowUnix()).empty());
  h.badSession("192.0.2.7");  // the fourth ends and triggers the block
  auto blocks = listBlocks(h.store(), h.nowUnix());
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_EQ(blocks[0].ip, "192.0.2.7");
  EXPECT_EQ(blocks[0].reason, "bad sessions: 4 in 10m");
  EXPECT_EQ(blocks[0].created_unix, kStart);
  EXPECT_EQ(blocks[0].until_unix, kStart + 3600);
  StageResult r = h.connect("192.0.2.7");
  EXPECT_EQ(r.kind, Kind::kTempfail);
  EXPECT_TRUE(h.result().has("ABUSE_BLOCKED"));
}

TEST(AbuseSessions, WhatCountsAsBad) {
  AbuseHarness h("bad_session_limit = 1\nbad_rcpt_threshold = 3\n");
  // Sessions with a message (accepted or refused) and few bad recipients are fine.
  for (int i = 0; i < 5; ++i) {
    h.connect("192.0.2.8", SessionStats{1, 0, 2, 0, false});
    h.connect("192.0.2.8", SessionStats{0, 1, 0, 0, false});
  }
  EXPECT_TRUE(listBlocks(h.store(), h.nowUnix()).empty());
  h.connect("192.0.2.8", SessionStats{1, 0, 3, 0, false});
  h.connect("192.0.2.8", SessionStats{1, 0, 3, 0, false});
  EXPECT_EQ(listBlocks(h.store(), h.nowUnix()).size(), 1u);
}

TEST(AbuseSessions, FailedLoginsMakeASessionBad) {
  AbuseHarness h("bad_session_limit = 2\nbad_auth_threshold = 2\n");
  SessionStats one_failure{1, 0, 0, 0, false, 1};
  SessionStats two_failures{1, 0, 0, 0, false, 2};
  for (int i = 0; i < 5; ++i) h.connect("192.0.2.10", one_failure);
  EXPECT_TRUE(listBlocks(h.store(), h.nowUnix()).empty()) << "below the threshold";
  for (int i = 0; i < 2; ++i) h.connect("192.0.2.10", two_failures);
  EXPECT_TRUE(listBlocks(h.store(), h.nowUnix()).empty());
  h.connect("192.0.2.10", two_failures);  // the third bad one exceeds the limit of 2
  auto blocks = listBlocks(h.store(), h.nowUnix());
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_EQ(blocks[0].ip, "192.0.2.10");
  EXPECT_EQ(h.connect("192.0.2.10").kind, Kind::kTempfail);
}

TEST(AbuseSessions, OneFailedLoginIsBadByDefault) {
  AbuseHarness h("bad_session_limit = 1\n");
  h.connect("192.0.2.11", SessionStats{1, 0, 0, 0, false, 1});
  EXPECT_TRUE(listBlocks(h.store(), h.nowUnix()).empty());
  h.connect("192.0.2.11", SessionStats{1, 0, 0, 0, false, 1});
  EXPECT_EQ(listBlocks(h.store(), h.nowUnix()).size(), 1u);
}

TEST(AbuseSessions, AnAuthenticatedSessionWithoutMailIsNotBad) {
  AbuseHarness h("bad_session_limit = 1\n");
  h.auth_user = "alice";
  for (int i = 0; i < 5; ++i) h.connect("192.0.2.12", SessionStats{});
  EXPECT_TRUE(listBlocks(h.store(), h.nowUnix()).empty());
  // Its failed attempts before success still count.
  h.connect("192.0.2.12", SessionStats{0, 0, 0, 0, false, 1});
  h.connect("192.0.2.12", SessionStats{0, 0, 0, 0, false, 1});
  EXPECT_EQ(listBlocks(h.store(), h.nowUnix()).size(), 1u);
}

TEST(AbuseSessions, RefusedSessionsAreNotCountedAgain) {
  AbuseHarness h("connection_rate = 1\nbad_session_limit = 1\nblock_time = \"1m\"\n");
  h.connect("192.0.2.9");
  EXPECT_EQ(h.connect("192.0.2.9").kind, Kind::kTempfail);  // blocked until +60s
  h.advance(seconds(30));
  // Refused while blocked; counting these would block again until +90s.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(h.badSession("192.0.2.9").kind, Kind::kTempfail);
  h.advance(seconds(45));
  EXPECT_EQ(h.connect("192.0.2.9").kind, Kind::kContinue);
}

TEST(AbuseBlocks, BlockExpires) {
  AbuseHarness h("connection_rate = 1\nblock_time = \"10m\"\n");
  h.connect("192.0.2.1");
  ASSERT_EQ(h.connect("192.0.2.1").kind, Kind::kTempfail);
  h.advance(minutes(9));
  EXPECT_EQ(h.connect("192.0.2.1").kind, Kind::kTempfail);
  h.advance(minutes(1));
  EXPECT_EQ(h.connect("192.0.2.1").kind, Kind::kContinue);
  // The expired entry was erased when it was found.
  EXPECT_EQ(h.store().get(kAbuseBlocksBucket, "192.0.2.1"), std::nullopt);
}

TEST(AbuseExempt, TrustedSessions) {
  AbuseHarness h("connection_rate = 1\nbad_session_limit = 1\n");
  h.trusted = true;
  addBlock(h.store(), {"192.0.2.1", kStart + 3600, "manual", kStart});
  for (int i = 0; i < 10; ++i) ASSERT_EQ(h.badSession("192.0.2.1").kind, Kind::kContinue);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(h.badSession("192.0.2.2").kind, Kind::kContinue);
  EXPECT_EQ(listBlocks(h.store(), h.nowUnix()).size(), 1u);  // only the manual one
}

TEST(AbuseExempt, ExemptNetworks) {
  AbuseHarness h(
      "connection_rate = 1\nbad_session_limit = 1\n"
      "exempt_networks = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n");
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(h.badSession("192.0.2.77").kind, Kind::kContinue);
    ASSERT_EQ(h.badSession("2001:db8::5").kind, Kind::kContinue);
  }
  EXPECT_TRUE(listBlocks(h.store(), h.nowUnix()).empty());
  h.connect("198.51.100.1");
  EXPECT_EQ(h.connect("198.51.100.1").kind, Kind::kTempfail);
}

TEST(AbuseExempt, AllowListedAtConnect) {
  AbuseHarness h("connection_rate = 1\nbad_session_limit = 1\n");
  h.allow_listed = true;
  for (int i = 0; i < 10; ++i) ASSERT_EQ(h.badSession("192.0.2.1").kind, Kind::kContinue);
  EXPECT_TRUE(listBlocks(h.store(), h.nowUnix()).empty());
  h.allow_listed = false;
  EXPECT_EQ(h.connect("192.0.2.1").kind, Kind::kContinue);
}

TEST(AbuseAdmin, AddListRemove) {
  auto store = openMemoryStore();
  addBlock(*store, {"::ffff:192.0.2.1", kStart + 100, "spam run\nsecond line", kStart});
  addBlock(*store, {"2001:db8::1", kStart + 200, "manual", kStart});
  addBlock(*store, {"192.0.2.3", kStart - 1, "old", kStart - 100});
  EXPECT_THROW(addBlock(*store, {"not-an-ip", kStart, "", kStart}), std::invalid_argument);

  auto blocks = listBlocks(*store, kStart);
  ASSERT_EQ(blocks.size(), 2u);  // the expired one is absent
  EXPECT_EQ(blocks[0].ip, "192.0.2.1");
  EXPECT_EQ(blocks[0].reason, "spam run second line");
  EXPECT_EQ(blocks[0].until_unix, kStart + 100);
  EXPECT_EQ(blocks[1].ip, "2001:db8::1");
  EXPECT_EQ(store->get(kAbuseBlocksBucket, "2001:db8::1"),
            "until=1700000200 created=1700000000 reason=manual");

  EXPECT_TRUE(removeBlock(*store, "::ffff:192.0.2.1"));
  EXPECT_FALSE(removeBlock(*store, "192.0.2.1"));
  EXPECT_FALSE(removeBlock(*store, "garbage"));
  EXPECT_EQ(listBlocks(*store, kStart).size(), 1u);
}

TEST(AbuseAdmin, FilterHonoursAdminChangesAtOnce) {
  AbuseHarness h("");
  addBlock(h.store(), {"192.0.2.5", kStart + 60, "manual", kStart});
  EXPECT_EQ(h.connect("192.0.2.5").kind, Kind::kTempfail);
  EXPECT_TRUE(removeBlock(h.store(), "192.0.2.5"));
  EXPECT_EQ(h.connect("192.0.2.5").kind, Kind::kContinue);
}

TEST(AbuseAdmin, MalformedEntriesAreIgnored) {
  AbuseHarness h("");
  h.store().put(kAbuseBlocksBucket, "192.0.2.5", "until=soon");
  EXPECT_EQ(h.connect("192.0.2.5").kind, Kind::kContinue);
  EXPECT_TRUE(listBlocks(h.store(), kStart).empty());
}

TEST(AbuseStore, BlocksPersistInLmdb) {
  std::string dir = ::testing::TempDir() + "/mxgate-abuse-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  {
    auto store = openLmdbStore(dir, 1 << 20);
    AbuseHarness h("connection_rate = 1\n", store.get());
    h.connect("192.0.2.1");
    ASSERT_EQ(h.connect("192.0.2.1").kind, Kind::kTempfail);
  }
  {
    auto store = openLmdbStore(dir, 1 << 20);
    auto blocks = listBlocks(*store, kStart);
    ASSERT_EQ(blocks.size(), 1u);
    EXPECT_EQ(blocks[0].reason, "connection rate: 2 in 1m");
    AbuseHarness h("connection_rate = 1\n", store.get());  // fresh counters
    EXPECT_EQ(h.connect("192.0.2.1").kind, Kind::kTempfail);
    EXPECT_TRUE(h.result().has("ABUSE_BLOCKED"));
  }
  std::filesystem::remove_all(dir);
}

TEST(AbuseConfig, BadSettingsFailAtTheirLine) {
  try {
    AbuseHarness h("connection_rate = 5\nexempt_networks = [\"10.0.0.0/33\"]\n");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), 3u);
    EXPECT_NE(e.message().find("filters.abuse.exempt_networks"), std::string::npos) << e.what();
  }
  EXPECT_THROW(AbuseHarness("connection_window = \"0s\"\n"), ConfigError);
  EXPECT_THROW(AbuseHarness("connection_rate = -1\n"), ConfigError);
  EXPECT_THROW(AbuseHarness("bad_rcpt_threshold = 0\n"), ConfigError);
  EXPECT_THROW(AbuseHarness("bad_auth_threshold = 0\n"), ConfigError);
  EXPECT_THROW(AbuseHarness("block_time = \"forever\"\n"), ConfigError);
  EXPECT_THROW(AbuseHarness("bogus = 1\n"), ConfigError);
}

TEST(AbuseConfig, SpecDeclaresSkipModeAfterLists) {
  FilterSpec spec = abuseFilterFactory().spec();
  EXPECT_EQ(spec.name, "abuse");
  EXPECT_EQ(spec.fail_mode, FailMode::kSkip);
  EXPECT_EQ(spec.fail_symbol, "ABUSE_CHECK_FAILED");
  EXPECT_EQ(spec.after, std::vector<std::string>{"lists"});
  EXPECT_EQ(spec.timeout, seconds(1));
}

}  // namespace
}  // namespace mxgate
