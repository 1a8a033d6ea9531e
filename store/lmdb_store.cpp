// The LMDB KvStore: one environment per directory, one named database per
// bucket.
//
// Several processes may open the same directory at once (the daemon and
// mxgatectl): LMDB coordinates them through its lock file. Within a process
// each directory must be opened once, and an environment must not be used
// across fork(); the child opens its own.
//
// scan() calls fn inside a read transaction with views into the map, so the
// views die when fn returns and fn must not call back into the store.
#include <lmdb.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "store/kv_store.h"

namespace mxgate {
namespace {

constexpr unsigned kMaxBuckets = 64;

MDB_val toVal(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}
std::string_view toView(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

class LmdbStore final : public KvStore {
 public:
  LmdbStore(std::string dir, size_t map_size) : dir_(std::move(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw StoreError("state store " + dir_ + ": cannot create directory: " + ec.message());
    check(mdb_env_create(&env_), "create environment");
    try {
      check(mdb_env_set_maxdbs(env_, kMaxBuckets), "set maxdbs");
      check(mdb_env_set_mapsize(env_, roundToPage(map_size)), "set map size");
      // MDB_NOMETASYNC: a write commit costs one fsync (data) instead of two;
      // the meta page is synced by the next commit. A system crash may undo
      // only the last commit and never breaks integrity; a process crash loses
      // nothing, since committed pages are already in the OS page cache.
      // MDB_NOTLS: read transactions are tied to the txn object, not the
      // thread, so coroutines and thread pools cannot trip over reader slots.
      check(mdb_env_open(env_, dir_.c_str(), MDB_NOTLS | MDB_NOMETASYNC, 0640), "open");
      // Reader slots left by a crashed process (e.g. a killed mxgatectl)
      // would pin old pages forever; clear them.
      int dead = 0;
      check(mdb_reader_check(env_, &dead), "check readers");
    } catch (...) {
      mdb_env_close(env_);
      throw;
    }
  }

  ~LmdbStore() override { mdb_env_close(env_); }

  std::optional<std::string> get(std::string_view bucket, std::string_view key) override {
    MDB_dbi dbi = handle(bucket);
    Txn txn(*this, MDB_RDONLY);
    MDB_val k = toVal(key), v;
    int rc = mdb_get(txn.txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return std::nullopt;
    check(rc, "get");
    return std::string(toView(v));
  }

  void put(std::string_view bucket, std::string_view key, std::string_view value) override {
    MDB_dbi dbi = handle(bucket);
    Txn txn(*this, 0);
    MDB_val k = toVal(key), v = toVal(value);
    check(mdb_put(txn.txn, dbi, &k, &v, 0), "put");
    txn.commit();
  }

  bool erase(std::string_view bucket, std::string_view key) override {
    MDB_dbi dbi = handle(bucket);
    Txn txn(*this, 0);
    MDB_val k = toVal(key);
    int rc = mdb_del(txn.txn, dbi, &k, nullptr);
    if (rc == MDB_NOTFOUND) return false;
    check(rc, "erase");
    txn.commit();
    return true;
  }

  void scan(std::string_view bucket, std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& fn) override {
    MDB_dbi dbi = handle(bucket);
    Txn txn(*this, MDB_RDONLY);
    MDB_cursor* cur = nullptr;
    check(mdb_cursor_open(txn.txn, dbi, &cur), "open cursor");
    std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> guard(cur, mdb_cursor_close);
    MDB_val k = toVal(prefix), v;
    int rc = prefix.empty() ? mdb_cursor_get(cur, &k, &v, MDB_FIRST)
                            : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      std::string_view key = toView(k);
      if (key.substr(0, prefix.size()) != prefix) return;
      if (!fn(key, toView(v))) return;
    }
    if (rc != MDB_NOTFOUND) check(rc, "scan");
  }

 private:
  // A transaction that aborts unless committed. Holds resize_mu_ shared so a
  // map resize (which needs no live transactions in this process) can wait.
  struct Txn {
    Txn(LmdbStore& s, unsigned flags) : store(s) {
      for (;;) {
        lock = std::shared_lock(s.resize_mu_);
        int rc = mdb_txn_begin(s.env_, nullptr, flags, &txn);
        if (rc != MDB_MAP_RESIZED) {
          s.check(rc, "begin transaction");
          return;
        }
        // Another process (e.g. a daemon with a larger store.map_size) grew
        // the map; adopt its size and retry.
        lock.unlock();
        std::unique_lock resize(s.resize_mu_);
        s.check(mdb_env_set_mapsize(s.env_, 0), "adopt map size");
      }
    }
    ~Txn() {
      if (txn != nullptr) mdb_txn_abort(txn);
    }
    void commit() {
      int rc = mdb_txn_commit(txn);
      txn = nullptr;  // freed by commit whether or not it succeeded
      store.check(rc, "commit");
    }
    LmdbStore& store;
    std::shared_lock<std::shared_mutex> lock;
    MDB_txn* txn = nullptr;
  };

  // Buckets are opened once in a write transaction of their own: LMDB allows
  // only one mdb_dbi_open at a time per process, and the handle becomes
  // usable by every transaction begun after that commit.
  MDB_dbi handle(std::string_view bucket) {
    std::lock_guard lock(dbi_mu_);
    if (auto it = dbis_.find(bucket); it != dbis_.end()) return it->second;
    if (bucket.empty() || bucket.find('\0') != std::string_view::npos)
      throw StoreError("state store " + dir_ + ": invalid bucket name");
    std::string name(bucket);
    Txn txn(*this, 0);
    MDB_dbi dbi;
    check(mdb_dbi_open(txn.txn, name.c_str(), MDB_CREATE, &dbi), "open bucket " + name);
    txn.commit();
    dbis_.emplace(std::move(name), dbi);
    return dbi;
  }

  void check(int rc, const std::string& what) const {
    if (rc == 0) return;
    if (rc == MDB_MAP_FULL)
      throw StoreError("state store " + dir_ + " is full; raise store.map_size");
    throw StoreError("state store " + dir_ + ": " + what + ": " + mdb_strerror(rc));
  }

  static size_t roundToPage(size_t n) {
    long page = sysconf(_SC_PAGESIZE);
    size_t p = page > 0 ? static_cast<size_t>(page) : 4096;
    return (n + p - 1) / p * p;
  }

  std::string dir_;
  MDB_env* env_ = nullptr;
  std::shared_mutex resize_mu_;
  std::mutex dbi_mu_;
  std::map<std::string, MDB_dbi, std::less<>> dbis_;
};

}  // namespace

std::unique_ptr<KvStore> openLmdbStore(const std::string& dir, size_t map_size_bytes) {
  return std::make_unique<LmdbStore>(dir, map_size_bytes);
}

}  // namespace mxgate
