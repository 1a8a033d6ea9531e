// Spool group commit: messages per second with a real fdatasync per batch,
// against the same writes synced one message at a time.
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <latch>
#include <thread>
#include <vector>

#include "gateway/spool/spool.h"

namespace {

using namespace mxgate;

std::string benchDir(const char* name) {
  auto dir = std::filesystem::temp_directory_path() /
             (std::string("mxgate-bench-") + name + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

// Writers append concurrently, like sessions finishing DATA at once.
void BM_SpoolGroupCommit(benchmark::State& state) {
  const int writers = static_cast<int>(state.range(0));
  const std::string dir = benchDir("group");
  const std::string body(10 * 1024, 'x');
  {
    Spool spool(Spool::Options{dir, 1ull << 30, nullptr});
    SpoolMeta meta;
    meta.queue_id = "BENCH";
    meta.envelope.mail_from = "a@example.test";
    meta.envelope.rcpts.push_back({"b@example.test", "", ""});
    const std::string encoded = encodeMeta(meta);
    for (auto _ : state) {
      std::latch done(writers);
      for (int i = 0; i < writers; ++i)
        spool.append(encoded, {body}, [&](std::error_code, SpoolLocation) { done.count_down(); });
      done.wait();
    }
    state.counters["syncs_per_iter"] =
        benchmark::Counter(static_cast<double>(spool.syncCount()) / state.iterations());
  }
  state.SetItemsProcessed(state.iterations() * writers);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SpoolGroupCommit)->Arg(1)->Arg(10)->Arg(50)->UseRealTime();

// Peer: one file per message, written and fsynced, then the directory synced
// (the classic per-message queue-file discipline).
void BM_FilePerMessageFsync(benchmark::State& state) {
  const std::string dir = benchDir("file");
  std::filesystem::create_directories(dir);
  const std::string body(10 * 1024, 'x');
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  uint64_t n = 0;
  for (auto _ : state) {
    std::string path = dir + "/" + std::to_string(n++);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (::write(fd, body.data(), body.size()) < 0) state.SkipWithError("write failed");
    ::fsync(fd);
    ::close(fd);
    ::fsync(dfd);
  }
  ::close(dfd);
  state.SetItemsProcessed(state.iterations());
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_FilePerMessageFsync)->UseRealTime();

}  // namespace
