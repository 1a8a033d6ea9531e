// The one shared, caching, asynchronous DNS resolver.
//
// Every filter that needs DNS (dnsbl, spf, dkim, dmarc, ...) asks this one
// object, from any event-loop thread:
//
//   DnsAnswer a = co_await resolver.lookup("example.com", RecordType::kMx);
//
// Above the backend (c-ares, or static zones in tests) it adds:
//  - a cache keyed by (lowercased name, type), honouring each answer's TTL;
//    negative answers (NXDOMAIN, no data) are cached too, for the SOA minimum
//    when the backend knows it, else ResolverOptions::negative_ttl. Timeouts
//    and server failures are never cached. The cache is bounded (LRU).
//  - merging of identical in-flight questions: while one backend query for
//    (name, type) runs, further lookups wait for its answer instead of asking
//    again.
//  - a deadline per backend query (ResolverOptions::timeout): a lookup always
//    completes, with kTimeout if the backend is silent.
//
// Threading: lookup() completes on the awaiting coroutine's own executor,
// however many threads are involved (the answer is posted there). Cache hits
// complete inline, without a post. Deadlines are kept by one small thread
// owned by the Resolver (a condition variable over a deadline-ordered map; no
// asio timers, so no timer can outlive its io_context at shutdown).
//
// Cancellation: a lookup honours its handler's cancellation slot (as used by
// asio's awaitable operators `||`, e.g. the pipeline's filter timeout). The
// cancelled waiter completes at once with kTimeout; the backend query goes on
// for the other waiters and for the cache.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include <asio/awaitable.hpp>

#include "gateway/dns/dns_backend.h"
#include "gateway/dns/dns_types.h"

namespace mxgate {

struct ResolverOptions {
  // Deadline for one backend query, after which every waiter gets kTimeout.
  // Keep it above the backend's own timeout * tries.
  std::chrono::milliseconds timeout{5000};
  // TTL for negative answers when the backend does not give one.
  std::chrono::seconds negative_ttl{300};
  // Upper bound for any cached TTL.
  std::chrono::seconds max_ttl{86400};
  // Cache size bound (entries); least recently used entries go first. 0: no cache.
  size_t max_entries = 100000;
  // The cache's clock; tests inject their own. Default: steady_clock::now.
  std::function<std::chrono::steady_clock::time_point()> clock;
};

struct ResolverStats {
  uint64_t queries = 0;          // lookup() calls
  uint64_t cache_hits = 0;       // answered from the cache
  uint64_t merged = 0;           // joined a backend query already in flight
  uint64_t backend_queries = 0;  // questions sent to the backend
  uint64_t timeouts = 0;         // lookups answered kTimeout (incl. cancelled)
};

class Resolver {
 public:
  explicit Resolver(std::unique_ptr<DnsBackend> backend, ResolverOptions options = {});
  // Destroys the backend first (joining its thread), then completes every
  // pending lookup with kError. REQUIRES: the io_contexts of callers are
  // still alive, i.e. destroy the Resolver before the event loops: its
  // threads post answers into them.
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Completes on the caller's executor. Never throws for DNS failures; the
  // status says what happened. Safe to call concurrently from any thread.
  asio::awaitable<DnsAnswer> lookup(std::string name, RecordType type);

  // Answer from the cache only, if present and fresh (no stats counted).
  bool cached(std::string_view name, RecordType type, DnsAnswer* out);
  void clearCache();
  size_t cacheSize() const;

  ResolverStats stats() const;

 private:
  struct Flight;
  struct Counters {
    std::atomic<uint64_t> queries{0}, cache_hits{0}, merged{0}, backend_queries{0}, timeouts{0};
  };
  using Deadlines = std::multimap<std::chrono::steady_clock::time_point, std::weak_ptr<Flight>>;
  struct CacheEntry {
    std::string key;
    DnsAnswer answer;
    std::chrono::steady_clock::time_point expires;
  };
  using Lru = std::list<CacheEntry>;

  // Registers a waiter (a type-erased completion) for key, starting a
  // backend query if none is in flight.
  // Returns the flight and the waiter's id (for cancellation).
  std::pair<std::shared_ptr<Flight>, uint64_t> startOrJoin(const std::string& key,
                                                           const std::string& name, RecordType type,
                                                           std::function<void(DnsAnswer)> waiter);
  // First completion of a flight wins (answer or deadline); later ones are ignored.
  void complete(const std::shared_ptr<Flight>& flight, DnsAnswer answer);
  void deadlineLoop();

  bool cacheGetLocked(const std::string& key, DnsAnswer* out);
  void cachePutLocked(const std::string& key, const DnsAnswer& answer);
  std::chrono::steady_clock::time_point now() const;

  ResolverOptions options_;
  std::unique_ptr<DnsBackend> backend_;

  mutable std::mutex mu_;
  Lru lru_;  // front: most recently used
  std::unordered_map<std::string, Lru::iterator> index_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> in_flight_;
  uint64_t next_waiter_id_ = 1;

  // Shared with cancellation handlers, which may outlive a lookup.
  std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();

  // Deadlines of backend queries in flight. Lock order: mu_, then dmu_.
  std::mutex dmu_;
  std::condition_variable dcv_;
  Deadlines deadlines_;
  bool stopping_ = false;
  std::thread deadline_thread_;
};

// "Example.COM." -> "example.com"
std::string normalizeDnsName(std::string_view name);

}  // namespace mxgate
