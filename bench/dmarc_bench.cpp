// One DMARC evaluation at end of DATA with a warm resolver cache: From
// parsing, policy lookup (a cache hit), record parsing, alignment through the
// Public Suffix List, the outcome and symbol; with and without the evaluation
// record written to an in-memory store.
#include <benchmark/benchmark.h>

#include <sstream>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <toml.hpp>

#include "filters/dmarc/dmarc_filter.h"
#include "gateway/config/table_reader.h"
#include "gateway/dns/resolver.h"
#include "gateway/dns/static_zone.h"
#include "gateway/pipeline/symbol_table.h"
#include "store/kv_store.h"

namespace {

using namespace mxgate;

const char* kMessage =
    "Received: from mail.example.com (mail.example.com [192.0.2.1])\r\n"
    "\tby mx.example.net with ESMTPS id 4Bx; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1;\r\n"
    "\th=from:to:subject:date; bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=; b=abc\r\n"
    "From: \"Example News\" <news@example.com>\r\n"
    "To: user@example.net\r\n"
    "Subject: November newsletter\r\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "Message-ID: <20231114221320.12345@mail.example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Hello.\r\n";

void runDmarc(benchmark::State& state, bool records) {
  auto backend = std::make_unique<StaticZoneBackend>();
  backend->addRecord("_dmarc.example.com", "TXT",
                     "\"v=DMARC1; p=reject; sp=quarantine; adkim=r; aspf=r; pct=100; "
                     "rua=mailto:dmarc@example.com\"");
  Resolver resolver(std::move(backend));
  auto store = openMemoryStore();
  std::istringstream in(std::string("[filters.dmarc]\nrecords = ") + (records ? "true" : "false"));
  toml::value doc = toml::parse(in, "bench.toml");
  TableReader root(doc, "");
  TableReader filters = root.getTable("filters");
  TableReader cfg = filters.getTable("dmarc");
  FilterDeps deps;
  deps.store = store.get();
  deps.resolver = &resolver;
  auto filter = makeDmarcFilter(cfg, deps);
  SymbolTable symbols;
  for (const SymbolSpec& s : dmarcFilterFactory().spec().symbols)
    symbols.declare(s.name, {s.default_weight, s.description, "dmarc"});

  SessionInfo session;
  session.client_ip = asio::ip::make_address("192.0.2.1");
  session.helo = "mail.example.com";
  Envelope envelope;
  envelope.mail_from = "bounce@mail.example.com";
  envelope.rcpts.push_back({"user@example.net", "", ""});
  AuthFacts auth;
  auth.spf = {"pass", "mailfrom", "mail.example.com", envelope.mail_from, "", "", ""};
  auth.dkim_checked = true;
  auth.dkim.push_back({"pass", "example.com", "s1", "rsa-sha256", "abc", ""});

  asio::io_context io;
  ScanResult result;
  auto once = [&] {
    result.clear();
    result.auth() = auth;
    FilterContext ctx(session, envelope, symbols, result);
    ctx.setMessage(kMessage);
    asio::co_spawn(io, filter->check(Stage::kData, ctx), asio::detached);
    io.run();
    io.restart();
  };
  once();  // warms the resolver cache
  if (result.auth().dmarc.result != "pass") state.SkipWithError("evaluation did not pass");
  for (auto _ : state) {
    once();
    benchmark::DoNotOptimize(result.auth().dmarc.result.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_DmarcEvaluate(benchmark::State& state) {
  runDmarc(state, false);
}
BENCHMARK(BM_DmarcEvaluate)->Repetitions(9)->ReportAggregatesOnly(true);

void BM_DmarcEvaluateAndRecord(benchmark::State& state) {
  runDmarc(state, true);
}
BENCHMARK(BM_DmarcEvaluateAndRecord)->Repetitions(9)->ReportAggregatesOnly(true);

}  // namespace
