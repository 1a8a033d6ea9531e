#include "gateway/dns/resolver.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "gateway/util/strings.h"

namespace mxgate {

std::string_view recordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kA:
      return "A";
    case RecordType::kCname:
      return "CNAME";
    case RecordType::kPtr:
      return "PTR";
    case RecordType::kMx:
      return "MX";
    case RecordType::kTxt:
      return "TXT";
    case RecordType::kAaaa:
      return "AAAA";
  }
  return "?";
}

std::string_view dnsStatusName(DnsStatus status) {
  switch (status) {
    case DnsStatus::kOk:
      return "ok";
    case DnsStatus::kNxDomain:
      return "nxdomain";
    case DnsStatus::kNoData:
      return "nodata";
    case DnsStatus::kTimeout:
      return "timeout";
    case DnsStatus::kServFail:
      return "servfail";
    case DnsStatus::kError:
      return "error";
  }
  return "?";
}

std::string normalizeDnsName(std::string_view name) {
  while (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return toLower(name);
}

namespace {

std::string cacheKey(const std::string& normalized, RecordType type) {
  std::string key = normalized;
  key += '/';
  key += std::to_string(static_cast<int>(type));
  return key;
}

DnsAnswer statusOnly(DnsStatus status) {
  DnsAnswer a;
  a.status = status;
  return a;
}

bool cacheable(DnsStatus s) {
  return s == DnsStatus::kOk || s == DnsStatus::kNxDomain || s == DnsStatus::kNoData;
}

}  // namespace

// One backend query and everyone waiting for it. waiters and done are
// guarded by mu (not Resolver::mu_), so a cancellation handler can remove
// its waiter without touching the Resolver. Lock order: Resolver::mu_, then mu.
struct Resolver::Flight {
  std::string key;
  std::mutex mu;
  bool done = false;
  std::vector<std::pair<uint64_t, std::function<void(DnsAnswer)>>> waiters;
  std::optional<Deadlines::iterator> deadline;  // guarded by Resolver::dmu_
};

Resolver::Resolver(std::unique_ptr<DnsBackend> backend, ResolverOptions options)
    : options_(std::move(options)), backend_(std::move(backend)) {
  if (!options_.clock) options_.clock = [] { return std::chrono::steady_clock::now(); };
  deadline_thread_ = std::thread([this] { deadlineLoop(); });
}

Resolver::~Resolver() {
  // The backend answers (or drops) its queries while being destroyed, never after.
  backend_.reset();
  {
    std::lock_guard lock(dmu_);
    stopping_ = true;
  }
  dcv_.notify_all();
  deadline_thread_.join();
  std::vector<std::shared_ptr<Flight>> left;
  {
    std::lock_guard lock(mu_);
    for (auto& [key, flight] : in_flight_) left.push_back(flight);
  }
  for (auto& f : left) complete(f, statusOnly(DnsStatus::kError));
}

std::chrono::steady_clock::time_point Resolver::now() const {
  return options_.clock();
}

asio::awaitable<DnsAnswer> Resolver::lookup(std::string name, RecordType type) {
  counters_->queries++;
  std::string norm = normalizeDnsName(name);
  std::string key = cacheKey(norm, type);
  {
    std::lock_guard lock(mu_);
    DnsAnswer hit;
    if (cacheGetLocked(key, &hit)) {
      counters_->cache_hits++;
      co_return hit;
    }
  }

  // Filled in once the waiter is registered. The cancellation handler is
  // installed before the query starts, so an answer can never race with it.
  struct CancelTarget {
    std::mutex mu;
    std::shared_ptr<Flight> flight;
    uint64_t id = 0;
  };

  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(DnsAnswer)>(
      [&](auto handler) {
        using Handler = decltype(handler);
        auto shared = std::make_shared<Handler>(std::move(handler));
        // Resumes the coroutine on its own executor, whichever thread answers.
        auto deliver = [shared](DnsAnswer answer) {
          auto ex = asio::get_associated_executor(*shared);
          asio::post(ex, [shared, answer = std::move(answer)]() mutable {
            auto slot = asio::get_associated_cancellation_slot(*shared);
            if (slot.is_connected()) slot.clear();
            std::move (*shared)(std::move(answer));
          });
        };

        auto target = std::make_shared<CancelTarget>();
        auto slot = asio::get_associated_cancellation_slot(*shared);
        if (slot.is_connected()) {
          slot.assign([target, counters = counters_](asio::cancellation_type) {
            std::shared_ptr<Flight> flight;
            uint64_t id;
            {
              std::lock_guard lock(target->mu);
              flight = target->flight;
              id = target->id;
            }
            if (!flight) return;
            std::function<void(DnsAnswer)> waiter;
            {
              std::lock_guard lock(flight->mu);
              auto it = std::find_if(flight->waiters.begin(), flight->waiters.end(),
                                     [id](const auto& w) { return w.first == id; });
              if (it == flight->waiters.end()) return;  // already answered
              waiter = std::move(it->second);
              flight->waiters.erase(it);
            }
            counters->timeouts++;
            waiter(statusOnly(DnsStatus::kTimeout));
          });
        }

        auto [flight, id] = startOrJoin(key, norm, type, std::move(deliver));
        std::lock_guard lock(target->mu);
        target->flight = std::move(flight);
        target->id = id;
      },
      asio::use_awaitable);
}

std::pair<std::shared_ptr<Resolver::Flight>, uint64_t> Resolver::startOrJoin(
    const std::string& key, const std::string& name, RecordType type,
    std::function<void(DnsAnswer)> waiter) {
  std::shared_ptr<Flight> flight;
  uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = next_waiter_id_++;
    // Answered while this coroutine was suspending? Then the cache has it.
    DnsAnswer hit;
    if (cacheGetLocked(key, &hit)) {
      counters_->cache_hits++;
      waiter(std::move(hit));
      return {nullptr, id};
    }
    auto it = in_flight_.find(key);
    if (it != in_flight_.end()) {
      counters_->merged++;
      std::lock_guard flock(it->second->mu);
      it->second->waiters.emplace_back(id, std::move(waiter));
      return {it->second, id};
    }
    flight = std::make_shared<Flight>();
    flight->key = key;
    flight->waiters.emplace_back(id, std::move(waiter));
    in_flight_.emplace(key, flight);
    std::lock_guard dlock(dmu_);
    flight->deadline =
        deadlines_.emplace(std::chrono::steady_clock::now() + options_.timeout, flight);
  }
  dcv_.notify_one();
  counters_->backend_queries++;
  // The backend may answer inline: no lock may be held here.
  backend_->query(name, type, [this, weak = std::weak_ptr<Flight>(flight)](DnsAnswer answer) {
    if (auto f = weak.lock()) complete(f, std::move(answer));
  });
  return {flight, id};
}

void Resolver::complete(const std::shared_ptr<Flight>& flight, DnsAnswer answer) {
  std::vector<std::pair<uint64_t, std::function<void(DnsAnswer)>>> waiters;
  {
    std::lock_guard lock(mu_);
    {
      std::lock_guard flock(flight->mu);
      if (flight->done) return;  // the deadline or the answer came first
      flight->done = true;
      waiters.swap(flight->waiters);
    }
    auto it = in_flight_.find(flight->key);
    if (it != in_flight_.end() && it->second == flight) in_flight_.erase(it);
    {
      std::lock_guard dlock(dmu_);
      if (flight->deadline) {
        deadlines_.erase(*flight->deadline);
        flight->deadline.reset();
      }
    }
    bool negative = answer.status == DnsStatus::kNxDomain || answer.status == DnsStatus::kNoData;
    if (negative && answer.ttl == 0)
      answer.ttl = static_cast<uint32_t>(options_.negative_ttl.count());
    if (cacheable(answer.status)) cachePutLocked(flight->key, answer);
  }
  if (answer.status == DnsStatus::kTimeout) counters_->timeouts += waiters.size();
  for (auto& [id, w] : waiters) w(answer);
}

void Resolver::deadlineLoop() {
  std::unique_lock lock(dmu_);
  while (!stopping_) {
    if (deadlines_.empty()) {
      dcv_.wait(lock);
      continue;
    }
    auto first = deadlines_.begin()->first;
    if (std::chrono::steady_clock::now() < first) {
      dcv_.wait_until(lock, first);
      continue;
    }
    std::vector<std::shared_ptr<Flight>> expired;
    auto now = std::chrono::steady_clock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      if (auto f = deadlines_.begin()->second.lock()) {
        f->deadline.reset();
        expired.push_back(std::move(f));
      }
      deadlines_.erase(deadlines_.begin());
    }
    lock.unlock();
    for (auto& f : expired) complete(f, statusOnly(DnsStatus::kTimeout));
    lock.lock();
  }
}

bool Resolver::cacheGetLocked(const std::string& key, DnsAnswer* out) {
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  if (now() >= it->second->expires) {
    lru_.erase(it->second);
    index_.erase(it);
    return false;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  *out = it->second->answer;
  return true;
}

void Resolver::cachePutLocked(const std::string& key, const DnsAnswer& answer) {
  if (options_.max_entries == 0) return;
  auto ttl = std::min<std::chrono::seconds>(std::chrono::seconds(answer.ttl), options_.max_ttl);
  if (ttl.count() <= 0) return;
  auto expires = now() + ttl;
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->answer = answer;
    it->second->expires = expires;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  while (lru_.size() >= options_.max_entries) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(CacheEntry{key, answer, expires});
  index_.emplace(key, lru_.begin());
}

bool Resolver::cached(std::string_view name, RecordType type, DnsAnswer* out) {
  std::lock_guard lock(mu_);
  return cacheGetLocked(cacheKey(normalizeDnsName(name), type), out);
}

void Resolver::clearCache() {
  std::lock_guard lock(mu_);
  lru_.clear();
  index_.clear();
}

size_t Resolver::cacheSize() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

ResolverStats Resolver::stats() const {
  ResolverStats s;
  s.queries = counters_->queries;
  s.cache_hits = counters_->cache_hits;
  s.merged = counters_->merged;
  s.backend_queries = counters_->backend_queries;
  s.timeouts = counters_->timeouts;
  return s;
}

}  // namespace mxgate
