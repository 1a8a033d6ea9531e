// A DnsBackend on c-ares (1.18): real DNS over UDP (TCP when truncated).
//
// Threading: one ares channel, used only by one dedicated thread. query()
// (from any thread) queues the question and wakes that thread through an
// eventfd; the thread starts queued queries, then waits in poll() on the
// channel's sockets (ares_getsock) and the eventfd, for at most
// ares_timeout(), and hands ready sockets to ares_process_fd. We chose poll
// over select (ares_fds) because a busy gateway has file descriptors above
// FD_SETSIZE, and over asio descriptors because c-ares opens and closes its
// sockets itself; a plain loop keeps the channel on one thread with no
// locking inside c-ares. Callbacks run on this thread: they must not block.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gateway/dns/dns_backend.h"

namespace mxgate {

struct CaresOptions {
  // "host:port,host:port" (ares_set_servers_ports_csv), e.g. "127.0.0.1:5353".
  // Empty: the system's nameservers (/etc/resolv.conf).
  std::string servers;
  // First try's timeout; c-ares doubles it on each later round over the
  // servers, so with one server the worst case is timeout * (2^tries - 1)
  // (defaults: 1.5 s + 3 s = 4.5 s, under ResolverOptions::timeout's 5 s).
  std::chrono::milliseconds timeout{1500};
  int tries = 2;
  // Negative answers without an SOA in the authority section get ttl 0
  // ("unknown"; the Resolver applies its default).
};

class CaresBackend : public DnsBackend {
 public:
  // Throws std::runtime_error if c-ares cannot be set up or servers is malformed.
  explicit CaresBackend(CaresOptions options = {});
  // Stops the thread; pending queries are answered kError (ARES_EDESTRUCTION).
  ~CaresBackend() override;

  void query(const std::string& name, RecordType type, Callback done) override;

 private:
  struct Pending;
  void loop();

  CaresOptions options_;
  void* channel_ = nullptr;  // ares_channel
  int wake_fd_ = -1;         // eventfd
  std::mutex mu_;
  std::deque<std::unique_ptr<Pending>> queue_;  // guarded by mu_
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Decodes a DNS response for the answer records of type. Exposed for tests.
// status/ttl describe a successful parse; for negative responses ttl is the
// RFC 2308 negative TTL from the SOA (min of its TTL and MINIMUM), or 0.
DnsAnswer parseDnsResponse(const unsigned char* buf, int len, RecordType type);

}  // namespace mxgate
