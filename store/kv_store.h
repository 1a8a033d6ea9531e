// The key-value seam for the daemon's state (abuse blocks, greylisting,
// reputation, ...). LMDB is the embedded default; a shared backend for several
// nodes can implement the same interface.
//
// Thread-safe. Buckets are independent key spaces created on first use.
// Writes may block for one disk sync: callers on an event loop use them only
// for rare events, or hand them to a worker.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mxgate {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class KvStore {
 public:
  virtual ~KvStore() = default;
  virtual std::optional<std::string> get(std::string_view bucket, std::string_view key) = 0;
  virtual void put(std::string_view bucket, std::string_view key, std::string_view value) = 0;
  // Returns true if the key existed.
  virtual bool erase(std::string_view bucket, std::string_view key) = 0;
  // Visits keys starting with prefix in key order until fn returns false.
  // REQUIRES: fn does not call back into the store (a read transaction or
  // lock is held while it runs).
  virtual void scan(
      std::string_view bucket, std::string_view prefix,
      const std::function<bool(std::string_view key, std::string_view value)>& fn) = 0;
};

// Opens (creating if needed) an LMDB environment in directory dir.
// Throws StoreError with the path and LMDB's reason on failure.
std::unique_ptr<KvStore> openLmdbStore(const std::string& dir, size_t map_size_bytes);

// An in-memory store for tests.
std::unique_ptr<KvStore> openMemoryStore();

}  // namespace mxgate
