// SMTP parsing costs: command lines and the DATA reader.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>

#include "gateway/pipeline/types.h"
#include "gateway/smtp/command.h"
#include "gateway/smtp/data_reader.h"

namespace {

using namespace mxgate;

void BM_ParseMailFrom(benchmark::State& state) {
  const std::string line = "MAIL FROM:<bounce-12345@lists.example.org> SIZE=28113 BODY=8BITMIME";
  for (auto _ : state) {
    smtp::Command cmd = smtp::parseCommand(line);
    smtp::Path path;
    auto err = smtp::parsePath(cmd.arg, "FROM", true, &path);
    Envelope env;
    auto perr = smtp::parseMailParams(path.params, 30 << 20, &env);
    benchmark::DoNotOptimize(err);
    benchmark::DoNotOptimize(perr);
    benchmark::DoNotOptimize(env);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseMailFrom);

void BM_ParseRcptTo(benchmark::State& state) {
  const std::string line =
      "RCPT TO:<alice.smith@example.test> NOTIFY=FAILURE,DELAY "
      "ORCPT=rfc822;alice.smith@example.test";
  for (auto _ : state) {
    smtp::Command cmd = smtp::parseCommand(line);
    smtp::Path path;
    auto err = smtp::parsePath(cmd.arg, "TO", true, &path);
    Recipient r;
    auto perr = smtp::parseRcptParams(path.params, &r);
    benchmark::DoNotOptimize(err);
    benchmark::DoNotOptimize(perr);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseRcptTo);

// A realistic message: 76-character text lines, some starting with a dot.
std::string makeData(size_t size) {
  std::string line(74, 'x');
  std::string out = "Subject: benchmark\r\nFrom: a@example.test\r\n\r\n";
  size_t n = 0;
  while (out.size() < size) {
    out += (n++ % 50 == 0) ? ".." + line.substr(1) : line;
    out += "\r\n";
  }
  out += ".\r\n";
  return out;
}

void BM_DataReader(benchmark::State& state) {
  const std::string data = makeData(static_cast<size_t>(state.range(0)));
  std::string out;
  out.reserve(data.size());
  for (auto _ : state) {
    out.clear();
    smtp::DataReader reader(&out, 0, smtp::BareNewline::kReject);
    // Feed in 64 KB chunks, as the session reads them.
    size_t pos = 0;
    while (!reader.done() && pos < data.size()) {
      size_t n = std::min<size_t>(64 * 1024, data.size() - pos);
      pos += reader.feed(std::string_view(data).substr(pos, n));
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_DataReader)->Arg(10 << 10)->Arg(1 << 20);

// The floor for any DATA reader: copying the same bytes with memcpy.
void BM_MemcpyPeer(benchmark::State& state) {
  const std::string data = makeData(static_cast<size_t>(state.range(0)));
  std::string out(data.size(), '\0');
  for (auto _ : state) {
    std::memcpy(out.data(), data.data(), data.size());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_MemcpyPeer)->Arg(10 << 10)->Arg(1 << 20);

}  // namespace
