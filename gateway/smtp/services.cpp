#include "gateway/smtp/services.h"

#include <chrono>
#include <cstdio>

namespace mxgate {

ConnectionLimiter::Verdict ConnectionLimiter::acquire(const asio::ip::address& ip, int max_total,
                                                      int max_per_ip) {
  if (total_.fetch_add(1) >= max_total) {
    total_.fetch_sub(1);
    return Verdict::kTooManyTotal;
  }
  std::lock_guard lock(mu_);
  int& n = per_ip_[ip.to_string()];
  if (n >= max_per_ip) {
    if (n == 0) per_ip_.erase(ip.to_string());
    total_.fetch_sub(1);
    return Verdict::kTooManyFromIp;
  }
  ++n;
  return Verdict::kOk;
}

void ConnectionLimiter::release(const asio::ip::address& ip) {
  total_.fetch_sub(1);
  std::lock_guard lock(mu_);
  auto it = per_ip_.find(ip.to_string());
  if (it != per_ip_.end() && --it->second <= 0) per_ip_.erase(it);
}

void Services::registerSession(uint64_t id, std::function<void()> stop_hook) {
  std::lock_guard lock(sessions_mu_);
  sessions_[id] = std::move(stop_hook);
}

void Services::unregisterSession(uint64_t id) {
  std::lock_guard lock(sessions_mu_);
  sessions_.erase(id);
}

void Services::stopSessions() {
  std::lock_guard lock(sessions_mu_);
  for (auto& [id, hook] : sessions_) hook();
}

std::string newQueueId() {
  static std::atomic<uint32_t> seq{0};
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%012llX%04X",
                static_cast<unsigned long long>(us) & 0xFFFFFFFFFFFFull,
                static_cast<unsigned>(seq.fetch_add(1) & 0xFFFF));
  return buf;
}

}  // namespace mxgate
