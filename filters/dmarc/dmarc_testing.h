// Test harness for the dmarc filter: a static DNS zone, an in-memory store,
// a fixed clock and pct sample, and one message per run().
#pragma once

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <toml.hpp>

#include "filters/dmarc/dmarc_filter.h"
#include "filters/dmarc/evaluation_record.h"
#include "gateway/config/table_reader.h"
#include "gateway/dns/resolver.h"
#include "gateway/dns/static_zone.h"
#include "gateway/pipeline/symbol_table.h"
#include "gateway/pipeline/testing.h"
#include "store/kv_store.h"

namespace mxgate::dmarc::testing {

class DmarcHarness {
 public:
  // zone: static-zone text; config: the body of [filters.dmarc].
  explicit DmarcHarness(std::string_view zone, const std::string& config = "",
                        KvStore* store = nullptr) {
    auto backend = std::make_unique<StaticZoneBackend>();
    backend->loadText(zone);
    backend_ = backend.get();
    resolver_ = std::make_unique<Resolver>(std::move(backend));
    owned_store_ = openMemoryStore();
    store_ = store ? store : owned_store_.get();
    std::istringstream in("[filters.dmarc]\n" + config);
    doc_ = toml::parse(in, "mxgate.toml");
    TableReader root(doc_, "");
    TableReader filters = root.getTable("filters");
    TableReader cfg = filters.getTable("dmarc");
    FilterDeps deps;
    deps.store = store_;
    deps.resolver = resolver_.get();
    DmarcHooks hooks;
    hooks.clock = [this] { return now; };
    hooks.sample = [this] { return sample; };
    filter_ = makeDmarcFilter(cfg, deps, hooks);
    cfg.finish();
    for (const SymbolSpec& s : dmarcFilterFactory().spec().symbols)
      symbols_.declare(s.name, {s.default_weight, s.description, "dmarc"});
    session.client_ip = asio::ip::make_address("192.0.2.1");
    session.helo = "mail.sender.example";
    envelope.mail_from = "bounce@sender.example";
    envelope.rcpts.push_back({"user@example.test", "", ""});
  }

  // A message with the given From field value.
  void from(const std::string& value) {
    message = "From: " + value + "\r\nTo: user@example.test\r\nSubject: hi\r\n\r\nHello.\r\n";
  }
  void spfPass(const std::string& domain) {
    auth.spf = {"pass", "mailfrom", domain, "x@" + domain, "", "", ""};
  }
  void dkim(const std::string& result, const std::string& domain,
            const std::string& selector = "s1") {
    auth.dkim_checked = true;
    auth.dkim.push_back({result, domain, selector, "rsa-sha256", "", ""});
  }

  StageResult run() {
    result_.clear();
    result_.auth() = auth;
    FilterContext ctx(session, envelope, symbols_, result_);
    ctx.setFilterName("dmarc");
    ctx.setMessage(message);
    return mxgate::testing::runCheck(*filter_, Stage::kData, ctx);
  }

  const ScanResult& result() const { return result_; }
  const DmarcOutcome& outcome() const { return result_.auth().dmarc; }
  // The symbols added, as "NAME" each.
  std::vector<std::string> symbols() const {
    std::vector<std::string> out;
    for (const auto& h : result_.hits()) out.push_back(h.name);
    return out;
  }
  std::vector<EvaluationRecord> records() const {
    std::vector<EvaluationRecord> out;
    store_->scan(kRecordsBucket, "", [&](std::string_view, std::string_view v) {
      auto r = decodeEvaluationRecord(v);
      if (r) out.push_back(std::move(*r));
      return true;
    });
    return out;
  }
  std::vector<std::string> recordKeys() const {
    std::vector<std::string> out;
    store_->scan(kRecordsBucket, "", [&](std::string_view k, std::string_view) {
      out.emplace_back(k);
      return true;
    });
    return out;
  }
  uint64_t dnsQueries() const { return backend_->queries(); }

  SessionInfo session;
  Envelope envelope;
  AuthFacts auth;
  std::string message;
  std::chrono::system_clock::time_point now{std::chrono::milliseconds(1'700'000'000'000)};
  uint32_t sample = 0;

 private:
  StaticZoneBackend* backend_ = nullptr;
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<KvStore> owned_store_;
  KvStore* store_ = nullptr;
  toml::value doc_;
  std::unique_ptr<Filter> filter_;
  SymbolTable symbols_;
  ScanResult result_;
};

}  // namespace mxgate::dmarc::testing
