#include "store/kv_store.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace mxgate {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test under the gtest temp dir, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::path(::testing::TempDir()) /
            ("mxgate-kv-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

constexpr size_t kMapSize = 16 << 20;

struct MemoryFactory {
  std::unique_ptr<KvStore> open() { return openMemoryStore(); }
};

struct LmdbFactory {
  TempDir dir;
  std::unique_ptr<KvStore> open() { return openLmdbStore(dir.str(), kMapSize); }
};

template <typename Factory>
class KvStoreTest : public ::testing::Test {
 protected:
  Factory factory_;
  std::unique_ptr<KvStore> store_ = factory_.open();
};

using Factories = ::testing::Types<MemoryFactory, LmdbFactory>;
TYPED_TEST_SUITE(KvStoreTest, Factories);

std::vector<std::pair<std::string, std::string>> scanAll(KvStore& s, std::string_view bucket,
                                                         std::string_view prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  s.scan(bucket, prefix, [&](std::string_view k, std::string_view v) {
    out.emplace_back(k, v);
    return true;
  });
  return out;
}

TYPED_TEST(KvStoreTest, GetPutErase) {
  KvStore& s = *this->store_;
  EXPECT_EQ(s.get("b", "k"), std::nullopt);
  s.put("b", "k", "v1");
  EXPECT_EQ(s.get("b", "k"), "v1");
  s.put("b", "k", "v2");
  EXPECT_EQ(s.get("b", "k"), "v2");
  EXPECT_TRUE(s.erase("b", "k"));
  EXPECT_FALSE(s.erase("b", "k"));
  EXPECT_EQ(s.get("b", "k"), std::nullopt);
  EXPECT_FALSE(s.erase("never", "k"));
}

TYPED_TEST(KvStoreTest, BucketsAreIndependent) {
  KvStore& s = *this->store_;
  s.put("one", "k", "1");
  s.put("two", "k", "2");
  EXPECT_EQ(s.get("one", "k"), "1");
  EXPECT_EQ(s.get("two", "k"), "2");
  s.erase("one", "k");
  EXPECT_EQ(s.get("two", "k"), "2");
}

TYPED_TEST(KvStoreTest, ValuesMayHoldAnyBytes) {
  KvStore& s = *this->store_;
  std::string value("a\0b\xff", 4);
  s.put("b", "k", value);
  EXPECT_EQ(s.get("b", "k"), value);
  s.put("b", "empty", "");
  EXPECT_EQ(s.get("b", "empty"), "");
}

TYPED_TEST(KvStoreTest, ScanVisitsPrefixInKeyOrder) {
  KvStore& s = *this->store_;
  for (const char* k : {"ip:10", "ip:2", "ip:1", "ipx", "host:a", "i"}) s.put("b", k, k);
  s.put("other", "ip:9", "x");
  using Kv = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(scanAll(s, "b", "ip:"), (Kv{{"ip:1", "ip:1"}, {"ip:10", "ip:10"}, {"ip:2", "ip:2"}}));
  EXPECT_EQ(scanAll(s, "b", "").size(), 6u);
  EXPECT_EQ(scanAll(s, "b", "zz"), Kv{});
  EXPECT_EQ(scanAll(s, "empty", ""), Kv{});
}

TYPED_TEST(KvStoreTest, ScanStopsWhenToldTo) {
  KvStore& s = *this->store_;
  for (const char* k : {"a", "b", "c"}) s.put("b", k, "");
  int seen = 0;
  s.scan("b", "", [&](std::string_view, std::string_view) { return ++seen < 2; });
  EXPECT_EQ(seen, 2);
}

TYPED_TEST(KvStoreTest, ConcurrentWritersAndReaders) {
  KvStore& s = *this->store_;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&s, t] {
      std::string bucket = "t" + std::to_string(t % 2);
      for (int i = 0; i < 50; ++i) {
        std::string key = std::to_string(t) + ":" + std::to_string(i);
        s.put(bucket, key, key);
        EXPECT_EQ(s.get(bucket, key), key);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(scanAll(s, "t0", "").size(), 100u);
  EXPECT_EQ(scanAll(s, "t1", "").size(), 100u);
}

TEST(LmdbStore, PersistsAcrossReopen) {
  TempDir dir;
  {
    auto s = openLmdbStore(dir.str(), kMapSize);
    s->put("abuse_blocks", "192.0.2.1", "until=1");
    s->put("abuse_blocks", "192.0.2.2", "until=2");
    s->erase("abuse_blocks", "192.0.2.2");
  }
  auto s = openLmdbStore(dir.str(), kMapSize);
  EXPECT_EQ(s->get("abuse_blocks", "192.0.2.1"), "until=1");
  EXPECT_EQ(s->get("abuse_blocks", "192.0.2.2"), std::nullopt);
}

TEST(LmdbStore, CreatesMissingDirectories) {
  TempDir dir;
  std::string nested = dir.str() + "/a/b";
  auto s = openLmdbStore(nested, kMapSize);
  s->put("b", "k", "v");
  EXPECT_TRUE(fs::exists(nested + "/data.mdb"));
}

TEST(LmdbStore, OpenFailureNamesThePath) {
  TempDir dir;
  fs::create_directories(dir.str());
  std::string file = dir.str() + "/not-a-dir";
  { std::ofstream(file) << "x"; }
  try {
    openLmdbStore(file, kMapSize);
    FAIL() << "expected StoreError";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  }
}

TEST(LmdbStore, FullMapGivesAClearError) {
  TempDir dir;
  auto s = openLmdbStore(dir.str(), 64 << 10);
  std::string big(4000, 'x');
  try {
    for (int i = 0; i < 1000; ++i) s->put("b", "k" + std::to_string(i), big);
    FAIL() << "expected StoreError";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("is full; raise store.map_size"), std::string::npos)
        << e.what();
  }
  // The failed write left the store usable.
  EXPECT_EQ(s->get("b", "k0"), big);
}

// LMDB forbids opening one directory twice in a process, so a second process
// (as mxgatectl beside the daemon) is simulated with fork(); the child opens
// its own environment and never touches the parent's.
TEST(LmdbStore, SharedBetweenProcesses) {
  TempDir dir;
  auto s = openLmdbStore(dir.str(), kMapSize);
  s->put("b", "from-parent", "p");
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    try {
      auto c = openLmdbStore(dir.str(), kMapSize * 2);  // a larger map, as after a config change
      if (c->get("b", "from-parent") != "p") code = 2;
      c->put("b", "from-child", "c");
      c->put("new_bucket", "k", std::string(kMapSize + (1 << 20), 'x'));  // beyond the parent's map
      if (!c->erase("b", "from-parent")) code = 3;
    } catch (...) {
      code = 4;
    }
    _exit(code);  // skip destructors: the parent's environment is not ours
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(s->get("b", "from-child"), "c");
  EXPECT_EQ(s->get("b", "from-parent"), std::nullopt);
  EXPECT_EQ(s->get("new_bucket", "k")->size(), kMapSize + (1 << 20));
}

}  // namespace
}  // namespace mxgate
