// Long-lived objects shared by every session on every event-loop thread.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <asio/ip/address.hpp>
#include <asio/ssl/context.hpp>

#include "gateway/config/runtime.h"
#include "gateway/spool/spool.h"

namespace mxgate {

class KvStore;

// Counts open connections overall and per client address.
class ConnectionLimiter {
 public:
  enum class Verdict { kOk, kTooManyTotal, kTooManyFromIp };
  // On kOk the caller owns one slot and must call release(ip) exactly once.
  Verdict acquire(const asio::ip::address& ip, int max_total, int max_per_ip);
  void release(const asio::ip::address& ip);
  int total() const { return total_.load(); }

 private:
  std::atomic<int> total_{0};
  std::mutex mu_;
  std::unordered_map<std::string, int> per_ip_;
};

struct Services {
  // Swapped whole on reload; sessions keep the one they started with.
  std::atomic<std::shared_ptr<const Runtime>> runtime;
  Spool* spool = nullptr;
  KvStore* store = nullptr;
  std::shared_ptr<asio::ssl::context> tls;  // null when TLS is off
  ConnectionLimiter limiter;
  std::atomic<uint64_t> next_session_id{1};
};

// Unique, sortable, 16 upper-case hex digits: microseconds since the epoch
// (48 bits, wraps after 8.9 years) and a process-wide counter.
std::string newQueueId();

}  // namespace mxgate
