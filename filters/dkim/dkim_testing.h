// Test helpers: the dkim filter built from a [filters.dkim] body, with a
// static DNS zone behind the shared Resolver and a real worker pool.
#pragma once

#include <memory>
#include <sstream>
#include <string>

#include "filters/dkim/dkim_filter.h"
#include "gateway/config/table_reader.h"
#include "gateway/dns/resolver.h"
#include "gateway/dns/static_zone.h"
#include "gateway/pipeline/symbol_table.h"
#include "gateway/pipeline/testing.h"
#include "gateway/util/worker_pool.h"

namespace mxgate::dkim::testing {

// A TXT value for the static zone: character-strings of at most 255 bytes.
inline std::string txtValue(const std::string& record) {
  std::string out;
  for (size_t i = 0; i == 0 || i < record.size(); i += 255) {
    out += out.empty() ? "\"" : " \"";
    for (char c : record.substr(i, 255)) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out;
}

class DkimHarness {
 public:
  // config_file: where the section "is", for relative key paths.
  explicit DkimHarness(const std::string& body, const std::string& config_file = "mxgate.toml") {
    auto zone = std::make_unique<StaticZoneBackend>();
    zone_ = zone.get();
    resolver_ = std::make_unique<Resolver>(std::move(zone));
    std::istringstream in("[filters.dkim]\n" + body);
    doc_ = toml::parse(in, config_file);
    TableReader root(doc_, "");
    TableReader filters = root.getTable("filters");
    TableReader config = filters.getTable("dkim");
    FilterDeps deps;
    deps.resolver = resolver_.get();
    deps.workers = &workers_;
    filter_ = dkimFilterFactory().create(config, deps);
    config.finish();
    for (const SymbolSpec& s : dkimFilterFactory().spec().symbols)
      symbols_.declare(s.name, {s.default_weight, s.description, "dkim"});
  }

  StaticZoneBackend& zone() { return *zone_; }

  // Runs the data stage; trusted: the client may relay (so it is signed).
  ScanResult run(const std::string& message, bool trusted = false) {
    SessionInfo session;
    session.trusted = trusted;
    Envelope envelope;
    ScanResult result;
    FilterContext ctx(session, envelope, symbols_, result);
    ctx.setFilterName("dkim");
    ctx.setMessage(message);
    mxgate::testing::runCheck(*filter_, Stage::kData, ctx);
    return result;
  }

 private:
  StaticZoneBackend* zone_;
  std::unique_ptr<Resolver> resolver_;
  WorkerPool workers_{2};
  toml::value doc_;
  SymbolTable symbols_;
  std::unique_ptr<Filter> filter_;
};

}  // namespace mxgate::dkim::testing
