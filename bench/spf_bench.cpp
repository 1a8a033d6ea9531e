// SPF evaluation cost with a warm resolver cache: a record with an include:
// and a few mechanisms, all answers cached, so one libspf2 pass runs.
#include <benchmark/benchmark.h>

#include <optional>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "filters/spf/spf_eval.h"
#include "gateway/dns/resolver.h"
#include "gateway/dns/static_zone.h"

namespace {

using namespace mxgate;

constexpr const char* kZone = R"(
example.org        TXT  "v=spf1 ip4:198.51.100.0/24 a mx include:_spf.example.net ~all"
example.org        A    198.51.100.200
example.org        MX   10 mx1.example.org
mx1.example.org    A    198.51.100.25
_spf.example.net   TXT  "v=spf1 ip4:203.0.113.0/24 ip6:2001:db8::/32 -all"
)";

SpfVerdict evaluate(asio::io_context& io, Resolver& resolver, const SpfRequest& req) {
  std::optional<SpfVerdict> out;
  asio::co_spawn(io, evaluateSpf(resolver, req),
                 [&](std::exception_ptr, SpfVerdict v) { out = std::move(v); });
  io.restart();
  io.run();
  return *out;
}

void BM_SpfWarmCacheInclude(benchmark::State& state) {
  auto zone = std::make_unique<StaticZoneBackend>();
  zone->loadText(kZone);
  Resolver resolver(std::move(zone));
  SpfRequest req;
  // Matched in the include, after a, mx and the first ip4 miss.
  req.client_ip = asio::ip::make_address("203.0.113.9");
  req.helo = "mail.example.org";
  req.mail_from = "news@example.org";
  req.receiver = "mx.example.test";
  asio::io_context io;
  SpfVerdict warm = evaluate(io, resolver, req);  // fills the cache
  if (warm.result != SpfResult::kPass) state.SkipWithError("expected pass");
  for (auto _ : state) {
    SpfVerdict v = evaluate(io, resolver, req);
    if (v.passes != 1) state.SkipWithError("cache was not warm");
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SpfWarmCacheInclude);

}  // namespace
