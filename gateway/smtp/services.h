// Long-lived objects shared by every session on every event-loop thread.
#pragma once

#include <atomic>
#include <functional>
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
class QueueManager;
class WorkerPool;

// Which kind of listening socket a session came in on.
enum class ListenerKind {
  kMx,          // server.listen: mail for our domains; AUTH only if submission.auth_on_mx
  kSubmission,  // submission.listen: MAIL needs AUTH first
};

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
  QueueManager* queue = nullptr;  // told about every spooled message
  // Blocking work of sessions (password verification); shared with filters.
  WorkerPool* workers = nullptr;
  // Password verifications queued or running, bounded so that a flood of
  // logins cannot crowd the filters' blocking calls out of the pool.
  std::atomic<int> auth_pending{0};
  // Swapped on reload (renewed certificates); null when TLS is off. A
  // session holds the context it started TLS with for its whole life.
  std::atomic<std::shared_ptr<asio::ssl::context>> tls;
  ConnectionLimiter limiter;
  std::atomic<uint64_t> next_session_id{1};

  // Open sessions, so a shutdown can tell each idle one 421 (RFC 5321 3.8).
  // The hook must only post work to the session's own thread.
  void registerSession(uint64_t id, std::function<void()> stop_hook);
  void unregisterSession(uint64_t id);
  void stopSessions();

 private:
  std::mutex sessions_mu_;
  std::unordered_map<uint64_t, std::function<void()>> sessions_;
};

// Unique, sortable, 16 upper-case hex digits: microseconds since the epoch
// (48 bits, wraps after 8.9 years) and a process-wide counter.
std::string newQueueId();

}  // namespace mxgate
