#include "gateway/dns/resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include "gateway/config/config_error.h"
#include "gateway/dns/cares_backend.h"
#include "gateway/dns/static_zone.h"
#include "gateway/util/temp_dir.h"

namespace mxgate {
namespace {

using namespace std::chrono_literals;

// Runs one lookup to completion. The io_context lives for the whole program:
// the thread that posted the answer may still be inside asio's wake-up
// (pthread_cond_signal after unlock) when run() returns here, so destroying
// the context at once would race with it (ThreadSanitizer reports it).
DnsAnswer runLookup(Resolver& r, const std::string& name, RecordType type) {
  static asio::io_context ctx;
  ctx.restart();
  auto fut = asio::co_spawn(ctx, r.lookup(name, type), asio::use_future);
  ctx.run();
  return fut.get();
}

// A backend that keeps every callback until the test answers it.
class HeldBackend : public DnsBackend {
 public:
  void query(const std::string& name, RecordType type, Callback done) override {
    std::lock_guard lock(mu);
    ++calls;
    held.push_back(std::move(done));
  }
  void answerAll(const DnsAnswer& a) {
    std::vector<Callback> cbs;
    {
      std::lock_guard lock(mu);
      cbs.swap(held);
    }
    for (auto& cb : cbs) cb(a);
  }
  int callCount() {
    std::lock_guard lock(mu);
    return calls;
  }

  std::mutex mu;
  int calls = 0;
  std::vector<Callback> held;
};

DnsAnswer okAnswer(std::string rec, uint32_t ttl) {
  DnsAnswer a;
  a.status = DnsStatus::kOk;
  a.records.push_back(std::move(rec));
  a.ttl = ttl;
  return a;
}

// A clock the test moves by hand.
struct FakeClock {
  std::shared_ptr<std::atomic<int64_t>> secs = std::make_shared<std::atomic<int64_t>>(0);
  std::function<std::chrono::steady_clock::time_point()> fn() const {
    auto s = secs;
    return [s] { return std::chrono::steady_clock::time_point(std::chrono::seconds(s->load())); };
  }
  void advance(int64_t n) { *secs += n; }
};

constexpr const char* kZone = R"(# test zone
example.test A 192.0.2.1
example.test A 192.0.2.2
Example.TEST. MX 10 MX.example.test.
example.test TXT "v=spf1 -all" "second \"string\""
example.test ttl=60 AAAA 2001:db8::1
www.test CNAME example.test
1.2.0.192.in-addr.arpa PTR example.test
slow.test TIMEOUT   # never answers
broken.test SERVFAIL
gone.test NXDOMAIN
)";

TEST(StaticZoneTest, ParsesRecords) {
  StaticZoneBackend z;
  z.loadText(kZone, "zone.txt");
  DnsAnswer a = z.answer("EXAMPLE.test", RecordType::kA);
  ASSERT_EQ(a.status, DnsStatus::kOk);
  EXPECT_EQ(a.records, (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
  EXPECT_EQ(a.ttl, StaticZoneBackend::kDefaultTtl);

  a = z.answer("example.test", RecordType::kMx);
  EXPECT_EQ(a.records, std::vector<std::string>{"10 mx.example.test"});

  a = z.answer("example.test", RecordType::kTxt);
  ASSERT_EQ(a.records.size(), 1u);
  EXPECT_EQ(a.records[0], "v=spf1 -allsecond \"string\"");
  EXPECT_EQ(a.txt[0], (std::vector<std::string>{"v=spf1 -all", "second \"string\""}));

  a = z.answer("example.test", RecordType::kAaaa);
  EXPECT_EQ(a.records, std::vector<std::string>{"2001:db8::1"});
  EXPECT_EQ(a.ttl, 60u);

  EXPECT_EQ(z.answer("www.test", RecordType::kA).records.size(), 2u);
  EXPECT_EQ(z.answer("www.test", RecordType::kCname).records,
            std::vector<std::string>{"example.test"});
  EXPECT_EQ(z.answer("1.2.0.192.in-addr.arpa", RecordType::kPtr).records,
            std::vector<std::string>{"example.test"});
  EXPECT_EQ(z.answer("example.test", RecordType::kPtr).status, DnsStatus::kNoData);
  EXPECT_EQ(z.answer("slow.test", RecordType::kA).status, DnsStatus::kTimeout);
  EXPECT_EQ(z.answer("broken.test", RecordType::kTxt).status, DnsStatus::kServFail);
  EXPECT_EQ(z.answer("gone.test", RecordType::kA).status, DnsStatus::kNxDomain);
  EXPECT_EQ(z.answer("unknown.test", RecordType::kA).status, DnsStatus::kNxDomain);
}

TEST(StaticZoneTest, AddRecordFromCode) {
  StaticZoneBackend z;
  z.addRecord("a.test", "A", "192.0.2.9", 30);
  z.addRecord("a.test", "TXT", "\"x\" \"y\"");
  z.addRecord("t.test", "TIMEOUT");
  EXPECT_EQ(z.answer("a.test", RecordType::kA).records, std::vector<std::string>{"192.0.2.9"});
  EXPECT_EQ(z.answer("a.test", RecordType::kA).ttl, 30u);
  EXPECT_EQ(z.answer("a.test", RecordType::kTxt).txt[0], (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(z.answer("t.test", RecordType::kA).status, DnsStatus::kTimeout);
  EXPECT_THROW(z.addRecord("b.test", "A", "not-an-ip"), ConfigError);
}

TEST(StaticZoneTest, ErrorsNameFileAndLine) {
  struct Case {
    const char* text;
    const char* want;  // expected what()
  };
  const Case cases[] = {
      {"ok.test A 192.0.2.1\n\nbad.test A 192.0.2.300\n", "z.txt:3: bad A address '192.0.2.300'"},
      {"x.test BOGUS 1\n", "z.txt:1: unknown record type 'BOGUS'"},
      {"x.test MX mx.test\n", "z.txt:1: MX needs 2 values, got 1"},
      {"x.test MX 70000 mx.test\n", "z.txt:1: bad MX preference '70000'"},
      {"# c\nx.test TXT \"open\n", "z.txt:2: unterminated quoted string"},
      {"x.test TXT\n", "z.txt:1: TXT needs at least one string"},
      {"x.test\n", "z.txt:1: missing record type after 'x.test'"},
      {"x.test AAAA 192.0.2.1\n", "z.txt:1: bad AAAA address '192.0.2.1'"},
      {"x.test TIMEOUT now\n", "z.txt:1: TIMEOUT needs 0 values, got 1"},
      {"x.test A 192.0.2.1\nx.test NXDOMAIN\n",
       "z.txt:2: NXDOMAIN for 'x.test', which has records"},
      {"x.test ttl=abc A 192.0.2.1\n", "z.txt:1: bad ttl 'ttl=abc'"},
  };
  for (const Case& c : cases) {
    StaticZoneBackend z;
    try {
      z.loadText(c.text, "z.txt");
      ADD_FAILURE() << "no error for: " << c.text;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), c.want);
    }
  }
}

TEST(StaticZoneTest, LoadsFileAndReportsPath) {
  testing::TempDir dir;
  std::string good = dir.write("good.zone", kZone);
  StaticZoneBackend z;
  z.loadFile(good);
  EXPECT_EQ(z.answer("example.test", RecordType::kA).records.size(), 2u);

  std::string bad = dir.write("bad.zone", "a.test A 192.0.2.1\na.test MX ten mx.test\n");
  try {
    StaticZoneBackend z2;
    z2.loadFile(bad);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), bad);
    EXPECT_EQ(e.line(), 2u);
  }
  EXPECT_THROW(StaticZoneBackend().loadFile(dir.path() + "/missing.zone"), ConfigError);
}

TEST(ResolverTest, CacheHitCallsBackendOnce) {
  auto zone = std::make_unique<StaticZoneBackend>();
  zone->loadText(kZone);
  StaticZoneBackend* z = zone.get();
  Resolver r(std::move(zone));
  DnsAnswer a = runLookup(r, "example.test", RecordType::kA);
  DnsAnswer b = runLookup(r, "EXAMPLE.test.", RecordType::kA);
  EXPECT_EQ(a.records, b.records);
  EXPECT_EQ(z->queries(), 1u);
  EXPECT_EQ(r.stats().queries, 2u);
  EXPECT_EQ(r.stats().cache_hits, 1u);
  // Another type is another question.
  EXPECT_EQ(runLookup(r, "example.test", RecordType::kMx).records[0], "10 mx.example.test");
  EXPECT_EQ(z->queries(), 2u);
}

TEST(ResolverTest, TtlExpiryWithInjectedClock) {
  auto zone = std::make_unique<StaticZoneBackend>();
  zone->addRecord("a.test", "A", "192.0.2.1", 60);
  StaticZoneBackend* z = zone.get();
  FakeClock clock;
  ResolverOptions opt;
  opt.clock = clock.fn();
  Resolver r(std::move(zone), opt);
  EXPECT_TRUE(runLookup(r, "a.test", RecordType::kA).ok());
  clock.advance(59);
  EXPECT_TRUE(runLookup(r, "a.test", RecordType::kA).ok());
  EXPECT_EQ(z->queries(), 1u);
  clock.advance(1);
  EXPECT_TRUE(runLookup(r, "a.test", RecordType::kA).ok());
  EXPECT_EQ(z->queries(), 2u);
}

TEST(ResolverTest, NegativeAnswersAreCachedForNegativeTtl) {
  auto zone = std::make_unique<StaticZoneBackend>();
  zone->addRecord("a.test", "A", "192.0.2.1");
  StaticZoneBackend* z = zone.get();
  FakeClock clock;
  ResolverOptions opt;
  opt.clock = clock.fn();
  opt.negative_ttl = 300s;
  Resolver r(std::move(zone), opt);
  DnsAnswer nx = runLookup(r, "nope.test", RecordType::kA);
  EXPECT_EQ(nx.status, DnsStatus::kNxDomain);
  EXPECT_EQ(nx.ttl, 300u);
  EXPECT_EQ(runLookup(r, "a.test", RecordType::kMx).status, DnsStatus::kNoData);
  clock.advance(299);
  EXPECT_EQ(runLookup(r, "nope.test", RecordType::kA).status, DnsStatus::kNxDomain);
  EXPECT_EQ(runLookup(r, "a.test", RecordType::kMx).status, DnsStatus::kNoData);
  EXPECT_EQ(z->queries(), 2u);
  clock.advance(1);
  EXPECT_EQ(runLookup(r, "nope.test", RecordType::kA).status, DnsStatus::kNxDomain);
  EXPECT_EQ(z->queries(), 3u);
}

TEST(ResolverTest, FailuresAreNotCached) {
  auto zone = std::make_unique<StaticZoneBackend>();
  zone->loadText(kZone);
  StaticZoneBackend* z = zone.get();
  Resolver r(std::move(zone));
  EXPECT_EQ(runLookup(r, "slow.test", RecordType::kA).status, DnsStatus::kTimeout);
  EXPECT_EQ(runLookup(r, "slow.test", RecordType::kA).status, DnsStatus::kTimeout);
  EXPECT_EQ(runLookup(r, "broken.test", RecordType::kA).status, DnsStatus::kServFail);
  EXPECT_EQ(runLookup(r, "broken.test", RecordType::kA).status, DnsStatus::kServFail);
  EXPECT_EQ(z->queries(), 4u);
  EXPECT_EQ(r.stats().timeouts, 2u);
  EXPECT_EQ(r.cacheSize(), 0u);
}

TEST(ResolverTest, CacheIsBounded) {
  auto zone = std::make_unique<StaticZoneBackend>();
  for (int i = 0; i < 10; ++i) zone->addRecord("h" + std::to_string(i) + ".test", "A", "192.0.2.1");
  StaticZoneBackend* z = zone.get();
  ResolverOptions opt;
  opt.max_entries = 4;
  Resolver r(std::move(zone), opt);
  for (int i = 0; i < 10; ++i) runLookup(r, "h" + std::to_string(i) + ".test", RecordType::kA);
  EXPECT_EQ(r.cacheSize(), 4u);
  runLookup(r, "h9.test", RecordType::kA);  // recent: still cached
  EXPECT_EQ(z->queries(), 10u);
  runLookup(r, "h0.test", RecordType::kA);  // evicted long ago
  EXPECT_EQ(z->queries(), 11u);
}

TEST(ResolverTest, MergesConcurrentLookupsAcrossThreads) {
  auto backend = std::make_unique<HeldBackend>();
  HeldBackend* b = backend.get();
  asio::io_context ctx[2];
  Resolver r(std::move(backend));

  constexpr int kLookups = 50;
  std::atomic<int> answered{0}, right_thread{0};
  for (int i = 0; i < kLookups; ++i) {
    asio::io_context& mine = ctx[i % 2];
    asio::co_spawn(
        mine,
        [&]() -> asio::awaitable<void> {
          DnsAnswer a = co_await r.lookup("merge.test", RecordType::kA);
          if (a.ok() && a.records == std::vector<std::string>{"192.0.2.7"}) ++answered;
          if (mine.get_executor().running_in_this_thread()) ++right_thread;
        },
        asio::detached);
  }
  std::thread t0([&] { ctx[0].run(); });
  std::thread t1([&] { ctx[1].run(); });
  // Wait until every lookup is waiting on the one backend query.
  for (int i = 0; i < 500 && r.stats().merged < kLookups - 1; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(r.stats().merged, static_cast<uint64_t>(kLookups - 1));
  b->answerAll(okAnswer("192.0.2.7", 60));
  t0.join();
  t1.join();
  EXPECT_EQ(b->callCount(), 1);
  EXPECT_EQ(answered, kLookups);
  EXPECT_EQ(right_thread, kLookups);
  EXPECT_EQ(r.stats().backend_queries, 1u);
}

TEST(ResolverTest, SilentBackendTimesOut) {
  auto backend = std::make_unique<HeldBackend>();
  HeldBackend* b = backend.get();
  ResolverOptions opt;
  opt.timeout = 100ms;
  Resolver r(std::move(backend), opt);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(runLookup(r, "silent.test", RecordType::kA).status, DnsStatus::kTimeout);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 90ms);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(r.stats().timeouts, 1u);
  // A late answer to the timed-out query is ignored; the next lookup asks again.
  b->answerAll(okAnswer("192.0.2.1", 60));
  EXPECT_EQ(r.cacheSize(), 0u);
  EXPECT_EQ(runLookup(r, "silent.test", RecordType::kA).status, DnsStatus::kTimeout);
  EXPECT_EQ(b->callCount(), 2);
}

TEST(ResolverTest, CancelledWaiterCompletesAndQueryGoesOn) {
  using namespace asio::experimental::awaitable_operators;
  auto backend = std::make_unique<HeldBackend>();
  HeldBackend* b = backend.get();
  Resolver r(std::move(backend));  // 5 s deadline
  asio::io_context ctx;
  auto start = std::chrono::steady_clock::now();
  auto fut = asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<int> {
        asio::steady_timer timer(co_await asio::this_coro::executor, 50ms);
        auto v =
            co_await (r.lookup("c.test", RecordType::kA) || timer.async_wait(asio::use_awaitable));
        co_return static_cast<int>(v.index());
      },
      asio::use_future);
  ctx.run();
  EXPECT_EQ(fut.get(), 1);  // the timer won
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  // The backend query is still in flight; its answer goes to the cache.
  b->answerAll(okAnswer("192.0.2.3", 60));
  DnsAnswer cached;
  ASSERT_TRUE(r.cached("c.test", RecordType::kA, &cached));
  EXPECT_EQ(cached.records[0], "192.0.2.3");
}

TEST(ResolverTest, DestructionAnswersPendingLookups) {
  asio::io_context ctx;
  std::future<DnsAnswer> fut;
  {
    Resolver r(std::make_unique<HeldBackend>());
    fut = asio::co_spawn(ctx, r.lookup("p.test", RecordType::kA), asio::use_future);
    ctx.run_for(20ms);
  }
  ctx.restart();
  ctx.run();
  EXPECT_EQ(fut.get().status, DnsStatus::kError);
}

// ---- c-ares against a loopback DNS server ----

// A tiny authoritative UDP server on 127.0.0.1 (random port):
//   a.test A 192.0.2.10, 192.0.2.11 (ttl 120); txt.test TXT "v=spf1" " -all";
//   mx.test MX 5 mail.test; silent.test: never answered; anything else:
//   NXDOMAIN with an SOA whose minimum is 45.
class LoopbackDns {
 public:
  LoopbackDns() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      throw std::runtime_error("bind");
    socklen_t len = sizeof sa;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoopbackDns() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int received() const { return received_; }

 private:
  static void put16(std::string& s, int v) {
    s += static_cast<char>(v >> 8);
    s += static_cast<char>(v & 0xff);
  }
  static void put32(std::string& s, uint32_t v) {
    put16(s, static_cast<int>(v >> 16));
    put16(s, static_cast<int>(v & 0xffff));
  }
  static std::string encodeName(const std::string& name) {
    std::string out;
    size_t pos = 0;
    while (pos < name.size()) {
      size_t dot = name.find('.', pos);
      if (dot == std::string::npos) dot = name.size();
      out += static_cast<char>(dot - pos);
      out += name.substr(pos, dot - pos);
      pos = dot + 1;
    }
    out += '\0';
    return out;
  }
  // Answer record whose owner is the question name (pointer to offset 12).
  static void addRr(std::string& s, int type, uint32_t ttl, const std::string& rdata) {
    put16(s, 0xC00C);
    put16(s, type);
    put16(s, 1);
    put32(s, ttl);
    put16(s, static_cast<int>(rdata.size()));
    s += rdata;
  }

  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      unsigned char buf[512];
      sockaddr_in from{};
      socklen_t flen = sizeof from;
      ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
      if (n < 12) continue;
      ++received_;
      // Question: labels from offset 12.
      std::string name;
      size_t i = 12;
      while (i < static_cast<size_t>(n) && buf[i] != 0) {
        size_t l = buf[i++];
        if (!name.empty()) name += '.';
        name.append(reinterpret_cast<char*>(buf + i), l);
        i += l;
      }
      size_t qend = i + 5;  // zero byte, type, class
      if (qend > static_cast<size_t>(n)) continue;
      int qtype = buf[i + 1] << 8 | buf[i + 2];
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (name == "silent.test") continue;

      std::string answers;
      int an = 0;
      int rcode = 0;
      if (name == "a.test" && qtype == 1) {
        addRr(answers, 1, 120, std::string("\xC0\x00\x02\x0A", 4));
        addRr(answers, 1, 90, std::string("\xC0\x00\x02\x0B", 4));
        an = 2;
      } else if (name == "txt.test" && qtype == 16) {
        addRr(answers, 16, 300, std::string("\x06v=spf1\x05 -all", 13));
        an = 1;
      } else if (name == "mx.test" && qtype == 15) {
        std::string rd;
        put16(rd, 5);
        rd += encodeName("mail.test");
        addRr(answers, 15, 300, rd);
        an = 1;
      } else if (name != "a.test" && name != "txt.test" && name != "mx.test") {
        rcode = 3;
      }
      std::string out(reinterpret_cast<char*>(buf), 2);  // id
      put16(out, 0x8400 | 0x0100 | 0x0080 | rcode);      // QR AA RD RA
      put16(out, 1);
      put16(out, an);
      put16(out, an == 0 ? 1 : 0);  // SOA in authority for negative answers
      put16(out, 0);
      out.append(reinterpret_cast<char*>(buf + 12), qend - 12);
      out += answers;
      if (an == 0) {
        std::string soa = encodeName("ns.test") + encodeName("admin.test");
        put32(soa, 1);      // serial
        put32(soa, 3600);   // refresh
        put32(soa, 600);    // retry
        put32(soa, 86400);  // expire
        put32(soa, 45);     // minimum
        std::string rr = encodeName("test");
        put16(rr, 6);
        put16(rr, 1);
        put32(rr, 600);
        put16(rr, static_cast<int>(soa.size()));
        rr += soa;
        out += rr;
      }
      sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> received_{0};
  std::thread thread_;
};

TEST(DnsCaresTest, AnswersFromLoopbackServer) {
  LoopbackDns server;
  CaresOptions co;
  co.servers = server.address();
  co.timeout = 300ms;
  co.tries = 1;
  Resolver r(std::make_unique<CaresBackend>(co));

  DnsAnswer a = runLookup(r, "A.test", RecordType::kA);
  ASSERT_EQ(a.status, DnsStatus::kOk) << dnsStatusName(a.status);
  EXPECT_EQ(a.records, (std::vector<std::string>{"192.0.2.10", "192.0.2.11"}));
  EXPECT_EQ(a.ttl, 90u);

  DnsAnswer t = runLookup(r, "txt.test", RecordType::kTxt);
  ASSERT_EQ(t.status, DnsStatus::kOk);
  EXPECT_EQ(t.records, std::vector<std::string>{"v=spf1 -all"});
  EXPECT_EQ(t.txt[0], (std::vector<std::string>{"v=spf1", " -all"}));

  DnsAnswer m = runLookup(r, "mx.test", RecordType::kMx);
  ASSERT_EQ(m.status, DnsStatus::kOk);
  EXPECT_EQ(m.records, std::vector<std::string>{"5 mail.test"});

  DnsAnswer nx = runLookup(r, "nothere.test", RecordType::kA);
  EXPECT_EQ(nx.status, DnsStatus::kNxDomain);
  EXPECT_EQ(nx.ttl, 45u);  // min(SOA ttl 600, minimum 45)

  DnsAnswer nodata = runLookup(r, "a.test", RecordType::kMx);
  EXPECT_EQ(nodata.status, DnsStatus::kNoData);

  int before = server.received();
  EXPECT_TRUE(runLookup(r, "a.test", RecordType::kA).ok());  // from the cache
  EXPECT_EQ(server.received(), before);
}

TEST(DnsCaresTest, SilentNameTimesOut) {
  LoopbackDns server;
  CaresOptions co;
  co.servers = server.address();
  co.timeout = 200ms;
  co.tries = 1;
  ResolverOptions ro;
  ro.timeout = 3s;  // above c-ares' own: c-ares reports the timeout
  Resolver r(std::make_unique<CaresBackend>(co), ro);
  auto start = std::chrono::steady_clock::now();
  DnsAnswer a = runLookup(r, "silent.test", RecordType::kA);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(a.status, DnsStatus::kTimeout);
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 2s);
}

TEST(DnsCaresTest, ConcurrentQueriesFromTwoThreads) {
  LoopbackDns server;
  CaresOptions co;
  co.servers = server.address();
  co.timeout = 500ms;
  co.tries = 2;
  // The contexts outlive the Resolver: its threads may still be posting to them.
  asio::io_context ctx[2];
  Resolver r(std::make_unique<CaresBackend>(co));
  std::atomic<int> ok{0};
  for (int i = 0; i < 40; ++i) {
    asio::co_spawn(
        ctx[i % 2],
        [&r, &ok, i]() -> asio::awaitable<void> {
          // Distinct names (NXDOMAIN) plus shared ones (merged or cached).
          std::string name = i % 4 == 0 ? "a.test" : "n" + std::to_string(i) + ".test";
          DnsAnswer a = co_await r.lookup(name, RecordType::kA);
          if (a.status == (i % 4 == 0 ? DnsStatus::kOk : DnsStatus::kNxDomain)) ++ok;
        },
        asio::detached);
  }
  std::thread t0([&] { ctx[0].run(); });
  std::thread t1([&] { ctx[1].run(); });
  t0.join();
  t1.join();
  EXPECT_EQ(ok, 40);
}

TEST(DnsCaresTest, ParserRejectsTruncatedResponses) {
  // id, flags (QR RD RA), qd=1 an=1 ns=0 ar=0; question a.test A IN;
  // answer: pointer to the question name, A IN ttl 60, 192.0.2.1.
  const unsigned char msg[] = {0x12, 0x34, 0x81, 0x80, 0,   1,   0,   1, 0, 0,  0, 0,  //
                               1,    'a',  4,    't',  'e', 's', 't', 0, 0, 1,  0, 1,  //
                               0xC0, 0x0C, 0,    1,    0,   1,   0,   0, 0, 60, 0, 4,  //
                               192,  0,    2,    1};
  DnsAnswer full = parseDnsResponse(msg, sizeof msg, RecordType::kA);
  ASSERT_EQ(full.status, DnsStatus::kOk);
  EXPECT_EQ(full.records, std::vector<std::string>{"192.0.2.1"});
  EXPECT_EQ(full.ttl, 60u);
  EXPECT_EQ(parseDnsResponse(msg, sizeof msg, RecordType::kTxt).status, DnsStatus::kNoData);
  for (size_t len = 0; len < sizeof msg; ++len) {
    EXPECT_EQ(parseDnsResponse(msg, static_cast<int>(len), RecordType::kA).status,
              DnsStatus::kError)
        << "length " << len;
  }
}

TEST(DnsCaresTest, RejectsBadServerList) {
  CaresOptions co;
  co.servers = "not an address";
  EXPECT_THROW(CaresBackend b(co), std::runtime_error);
}

}  // namespace
}  // namespace mxgate
