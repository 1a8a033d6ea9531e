// Table-driven conformance over ../shared/corpora/dmarc/tables/ (see
// ../shared/corpora/INDEX.md). The mox tables are the conformance target:
// every row must pass. The OpenDMARC tables are reference: the rows that
// are that library's own behaviour are listed below with the reason, and
// the test checks that we still differ there (so the list stays true).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include "filters/dmarc/dmarc_testing.h"
#include "filters/dmarc/evaluate.h"
#include "filters/dmarc/from_domain.h"
#include "filters/dmarc/org_domain.h"
#include "filters/dmarc/policy_record.h"

namespace mxgate::dmarc {
namespace {

namespace fs = std::filesystem;
using Row = std::map<std::string, std::string>;

fs::path tablesDir() {
  const char* src = std::getenv("MXGATE_SOURCE_DIR");
  return fs::path(src ? src : MXGATE_SOURCE_DIR) / ".." / "shared" / "corpora" / "dmarc" / "tables";
}

#define REQUIRE_TABLES()                                \
  if (!fs::exists(tablesDir()))                         \
  GTEST_SKIP() << "corpus not found at " << tablesDir() \
               << " (../shared/corpora/dmarc/tables beside the project root): skipping"

std::vector<std::string> splitTabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return out;
    start = tab + 1;
  }
}

// Rows keyed by the header's column names.
std::vector<Row> readTable(const std::string& name) {
  std::ifstream in(tablesDir() / name);
  EXPECT_TRUE(in) << "cannot read " << name;
  std::string line;
  std::vector<std::string> header;
  std::vector<Row> rows;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    auto cells = splitTabs(line);
    if (header.empty()) {
      header = cells;
      continue;
    }
    Row row;
    for (size_t i = 0; i < header.size(); ++i) row[header[i]] = i < cells.size() ? cells[i] : "";
    rows.push_back(std::move(row));
  }
  EXPECT_FALSE(rows.empty()) << name;
  return rows;
}

std::string quoteTxt(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void report(const char* table, int pass, size_t total, const std::set<std::string>& differ = {}) {
  std::string rows;
  for (const auto& r : differ) rows += (rows.empty() ? "" : ",") + r;
  std::printf("[ DMARC    ] %s: %d/%zu rows as expected%s%s\n", table, pass, total,
              differ.empty() ? "" : "; listed differences: rows ", rows.c_str());
  ::testing::Test::RecordProperty(table, std::to_string(pass) + "/" + std::to_string(total));
}

// ---- mox: verification with DNS ----

std::string moxZone() {
  std::string zone;
  for (const Row& r : readTable("mox-dmarc-dns.tsv")) {
    const std::string& v = r.at("value");
    if (!v.empty() && v[0] == '(')  // "(lookup fails: SERVFAIL/temperror)"
      zone += r.at("name") + " SERVFAIL\n";
    else
      zone += r.at("name") + " " + r.at("type") + " " + quoteTxt(v) + "\n";
  }
  return zone;
}

TEST(DmarcConformance, MoxVerify) {
  REQUIRE_TABLES();
  const std::string zone = moxZone();
  auto rows = readTable("mox-dmarc-verify.tsv");
  int pass = 0;
  for (const Row& row : rows) {
    testing::DmarcHarness h(zone);
    h.sample = 0;  // in the sample whenever pct > 0
    h.from("user@" + row.at("from_domain"));
    h.auth.dkim_checked = true;
    if (row.at("dkim_results(status:d=)") != "-") {
      std::string cell = row.at("dkim_results(status:d=)");
      size_t start = 0;
      while (start <= cell.size()) {
        size_t comma = cell.find(',', start);
        std::string one =
            cell.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        size_t colon = one.find(':');
        h.dkim(one.substr(0, colon), one.substr(colon + 1));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
    const std::string spf_domain = row.at("spf_domain") == "-" ? "" : row.at("spf_domain");
    h.auth.spf = {row.at("spf_result"), "mailfrom", spf_domain, "x@" + spf_domain, "", "", ""};
    StageResult r = h.run();
    auto recs = h.records();
    ASSERT_EQ(recs.size(), 1u) << "case " << row.at("case");
    const EvaluationRecord& rec = recs[0];
    const std::string& status = h.outcome().result;
    bool reject = status == "fail" && rec.policy == "reject";
    bool use_result = rec.published.has_value() && rec.override_reason != kOverrideSampledOut;
    auto b = [](bool v) { return std::string(v ? "true" : "false"); };
    std::string got = status + " reject=" + b(reject) + " use=" + b(use_result) +
                      " spf=" + b(rec.spf_aligned) + " dkim=" + b(rec.dkim_aligned) + " at " +
                      rec.policy_domain;
    std::string want = row.at("expected_dmarc_status") + " reject=" + row.at("expected_reject") +
                       " use=" + row.at("expected_use_result") +
                       " spf=" + row.at("aligned_spf_pass") +
                       " dkim=" + row.at("aligned_dkim_pass") + " at " + row.at("policy_domain");
    EXPECT_EQ(got, want) << "case " << row.at("case") << ": " << row.at("note");
    // What the session does follows from the same facts.
    EXPECT_EQ(r.kind == StageResult::Kind::kReject, reject && use_result)
        << "case " << row.at("case");
    pass += got == want;
  }
  report("mox-dmarc-verify.tsv", pass, rows.size());
}

// ---- mox: policy discovery ----

TEST(DmarcConformance, MoxLookup) {
  REQUIRE_TABLES();
  auto rows = readTable("mox-dmarc-lookup.tsv");
  // The third column describes the DNS data in words; turn it into a zone.
  std::string zone;
  for (const Row& row : rows) {
    const std::string& dns = row.at("txt_records_at__dmarc");
    std::string name = "_dmarc." + row.at("lookup_domain");
    if (dns.rfind("(DNS failure", 0) == 0) {
      zone += name + " SERVFAIL\n";
      continue;
    }
    size_t at = dns.find(" at _dmarc.");
    if (at != std::string::npos) name = dns.substr(at + 4, dns.find(')', at) - at - 4);
    int copies = dns.find("\" x2") != std::string::npos ? 2 : 1;
    for (size_t q = dns.find('"'); q != std::string::npos;
         q = dns.find('"', dns.find('"', q + 1) + 1)) {
      std::string txt = dns.substr(q + 1, dns.find('"', q + 1) - q - 1);
      for (int i = 0; i < copies; ++i) zone += name + " TXT " + quoteTxt(txt) + "\n";
    }
  }
  auto backend = std::make_unique<StaticZoneBackend>();
  backend->loadText(zone);
  Resolver resolver(std::move(backend));
  auto psl = PublicSuffixList::load("/usr/share/publicsuffix/public_suffix_list.dat");
  int pass = 0;
  for (const Row& row : rows) {
    asio::io_context io;
    auto fut = asio::co_spawn(io, discoverPolicy(resolver, *psl, row.at("lookup_domain")),
                              asio::use_future);
    io.run();
    PolicyLookup l = fut.get();
    const char* status = l.status == PolicyLookup::Status::kFound       ? "none(record found)"
                         : l.status == PolicyLookup::Status::kNone      ? "none"
                         : l.status == PolicyLookup::Status::kTempError ? "temperror"
                                                                        : "permerror";
    std::string got = std::string(status) + " at " + l.domain;
    std::string want = row.at("expected_status") + " at " + row.at("expected_record_domain");
    EXPECT_EQ(got, want) << "case " << row.at("case") << ": " << row.at("expected_error") << " ("
                         << l.reason << ")";
    pass += got == want;
  }
  report("mox-dmarc-lookup.tsv", pass, rows.size());
}

// ---- OpenDMARC: reference tables ----

TEST(DmarcConformance, OpendmarcRecordParse) {
  REQUIRE_TABLES();
  const std::map<std::string, std::string> differ{
      {"5",
       "p=n: OpenDMARC accepts a prefix of the policy word; RFC 7489 6.3 allows only "
       "none, quarantine, reject, so the record is invalid (permerror)"},
      {"12",
       "rf=bob: a valid Keyword; RFC 7489 6.3 says a format not in the registry SHOULD be "
       "ignored, not fail the record"},
      {"19", "rf=000...: likewise a valid Keyword (Ldh-str), ignored"},
  };
  auto rows = readTable("opendmarc-record-parse.tsv");
  int pass = 0;
  std::set<std::string> listed;
  for (const Row& row : rows) {
    ParsedRecord p = parsePolicyRecord(row.at("dmarc_record"));
    bool ok = p.status == ParsedRecord::Status::kOk;
    bool want_ok = row.at("expected_status") == "DMARC_PARSE_OKAY";
    const std::string& c = row.at("case");
    if (differ.count(c)) {
      EXPECT_NE(ok, want_ok) << "case " << c << " is listed as a difference but now agrees";
      listed.insert(c);
      continue;
    }
    EXPECT_EQ(ok, want_ok) << "case " << c << ": " << row.at("dmarc_record") << " -> " << p.error;
    pass += ok == want_ok;
  }
  report("opendmarc-record-parse.tsv", pass, rows.size(), listed);
}

TEST(DmarcConformance, OpendmarcAlignment) {
  REQUIRE_TABLES();
  const std::map<std::string, std::string> differ{
      {"5",
       "\".mac.com.\": an empty label is not a domain name (never aligned); OpenDMARC strips "
       "stray dots"},
      {"6", "\"....mac.com....\": likewise"},
  };
  auto psl = PublicSuffixList::load("/usr/share/publicsuffix/public_suffix_list.dat");
  auto rows = readTable("opendmarc-alignment.tsv");
  int pass = 0;
  std::set<std::string> listed;
  for (const Row& row : rows) {
    auto a = normalizeDomain(row.at("domain_a"));
    auto b = normalizeDomain(row.at("domain_b"));
    Alignment mode =
        row.at("mode") == "DMARC_RECORD_A_STRICT" ? Alignment::kStrict : Alignment::kRelaxed;
    bool got = a && b && aligned(*a, *b, mode, *psl);
    bool want = row.at("expected(0=aligned,-1=not)") == "0";
    const std::string& c = row.at("case");
    if (differ.count(c)) {
      EXPECT_NE(got, want) << "case " << c << " is listed as a difference but now agrees";
      listed.insert(c);
      continue;
    }
    EXPECT_EQ(got, want) << "case " << c << ": " << row.at("domain_a") << " / "
                         << row.at("domain_b");
    pass += got == want;
  }
  report("opendmarc-alignment.tsv", pass, rows.size(), listed);
}

TEST(DmarcConformance, OpendmarcFromDomain) {
  REQUIRE_TABLES();
  // OpenDMARC keeps the first address; RFC 7489 6.6.1 evaluates each domain.
  const std::map<std::string, std::vector<std::string>> differ{
      {"7", {"joe.com", "ace.com"}},
      {"8", {"joe.com", "ace.com"}},
  };
  auto rows = readTable("opendmarc-from-domain-extraction.tsv");
  int pass = 0;
  std::set<std::string> listed;
  std::string lenient_rows;
  for (const Row& row : rows) {
    bool lenient = false;
    auto got = parseFromValue(row.at("from_header_value"), &lenient);
    const std::string& c = row.at("case");
    if (lenient) lenient_rows += " " + c;
    if (auto it = differ.find(c); it != differ.end()) {
      EXPECT_EQ(got, it->second) << "case " << c;
      listed.insert(c);
      continue;
    }
    std::vector<std::string> want{row.at("expected_domain")};
    EXPECT_EQ(got, want) << "case " << c << ": " << row.at("from_header_value");
    pass += got == want;
  }
  std::printf(
      "[ DMARC    ] opendmarc-from-domain-extraction.tsv: not RFC 5322 syntax, found by the "
      "lenient scan: rows%s\n",
      lenient_rows.c_str());
  report("opendmarc-from-domain-extraction.tsv", pass, rows.size(), listed);
}

}  // namespace
}  // namespace mxgate::dmarc
