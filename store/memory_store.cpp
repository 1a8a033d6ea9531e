// The in-memory KvStore for tests: one ordered map per bucket under one mutex.
// scan() holds the mutex while it calls fn, so fn must not call back into the
// store (the LMDB store has the same rule).
#include <map>
#include <mutex>

#include "store/kv_store.h"

namespace mxgate {
namespace {

class MemoryStore final : public KvStore {
 public:
  std::optional<std::string> get(std::string_view bucket, std::string_view key) override {
    std::lock_guard lock(mu_);
    auto b = buckets_.find(bucket);
    if (b == buckets_.end()) return std::nullopt;
    auto it = b->second.find(key);
    if (it == b->second.end()) return std::nullopt;
    return it->second;
  }

  void put(std::string_view bucket, std::string_view key, std::string_view value) override {
    std::lock_guard lock(mu_);
    auto b = buckets_.try_emplace(std::string(bucket)).first;
    b->second.insert_or_assign(std::string(key), std::string(value));
  }

  bool erase(std::string_view bucket, std::string_view key) override {
    std::lock_guard lock(mu_);
    auto b = buckets_.find(bucket);
    if (b == buckets_.end()) return false;
    auto it = b->second.find(key);
    if (it == b->second.end()) return false;
    b->second.erase(it);
    return true;
  }

  void scan(std::string_view bucket, std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& fn) override {
    std::lock_guard lock(mu_);
    auto b = buckets_.find(bucket);
    if (b == buckets_.end()) return;
    for (auto it = b->second.lower_bound(prefix); it != b->second.end(); ++it) {
      if (std::string_view(it->first).substr(0, prefix.size()) != prefix) break;
      if (!fn(it->first, it->second)) break;
    }
  }

 private:
  using Bucket = std::map<std::string, std::string, std::less<>>;
  std::mutex mu_;
  std::map<std::string, Bucket, std::less<>> buckets_;
};

}  // namespace

std::unique_ptr<KvStore> openMemoryStore() {
  return std::make_unique<MemoryStore>();
}

}  // namespace mxgate
