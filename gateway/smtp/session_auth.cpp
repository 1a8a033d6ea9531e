// SMTP AUTH in the session (RFC 4954): where it is offered, the exchange, and
// the password check, which runs on the worker pool because argon2id is
// slow on purpose.
#include <sodium.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gateway/auth/password_hash.h"
#include "gateway/auth/sasl.h"
#include "gateway/auth/users_file.h"
#include "gateway/smtp/command.h"
#include "gateway/smtp/session.h"
#include "gateway/util/strings.h"
#include "gateway/util/worker_pool.h"

namespace mxgate::smtp {
namespace {

// Verifications queued or running per worker thread, across all sessions.
constexpr int kAuthPendingPerWorker = 4;

// User names come from the client: escape what could forge or break a log line.
std::string loggable(std::string_view s) {
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '"' || c == '\\') {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out;
}

// One slot of Services::auth_pending, given back however the check ends.
class PendingSlot {
 public:
  PendingSlot(std::atomic<int>& count, int limit) : count_(count) {
    held_ = count_.fetch_add(1) < limit;
    if (!held_) count_.fetch_sub(1);
  }
  ~PendingSlot() {
    if (held_) count_.fetch_sub(1);
  }
  PendingSlot(const PendingSlot&) = delete;
  PendingSlot& operator=(const PendingSlot&) = delete;
  bool held() const { return held_; }

 private:
  std::atomic<int>& count_;
  bool held_ = false;
};

}  // namespace

bool Session::authOffered() const {
  const SubmissionConfig& s = rt_->config.submission;
  if (!rt_->users || !(listener_ == ListenerKind::kSubmission || s.auth_on_mx)) return false;
  return tls_ || !s.require_tls;
}

asio::awaitable<void> Session::onAuth(const Command& cmd) {
  const Config& cfg = rt_->config;
  if (!rt_->users || !(listener_ == ListenerKind::kSubmission || cfg.submission.auth_on_mx)) {
    badCommand(502, "5.5.1", "Error: authentication not enabled");
    co_return;
  }
  if (!helo_seen_ || !info_.esmtp) {
    badCommand(503, "5.5.1", "Error: send EHLO first");
    co_return;
  }
  // RFC 4954 4: one successful AUTH per session, and none inside a transaction.
  if (!info_.auth_user.empty()) {
    badCommand(503, "5.5.1", "Error: already authenticated");
    co_return;
  }
  if (in_mail_) {
    badCommand(503, "5.5.1", "Error: AUTH not allowed during a mail transaction");
    co_return;
  }
  if (!tls_ && cfg.submission.require_tls) {
    badCommand(538, "5.7.11", "Encryption required for requested authentication mechanism");
    co_return;
  }

  SaslExchange sasl;
  SaslStep step = sasl.start(cmd.arg);
  while (step.kind == SaslStep::Kind::kChallenge) {
    reply(334, "", step.challenge);
    std::string line;
    ReadResult rr = co_await readLine(&line);
    if (rr == ReadResult::kClosed) {
      closing_ = true;
      co_return;
    }
    if (rr == ReadResult::kTooLong) {
      badCommand(500, "5.5.6", "Authentication exchange line is too long");
      co_return;
    }
    step = sasl.respond(line);
    sodium_memzero(line.data(), line.size());
  }
  if (step.kind == SaslStep::Kind::kError && !step.auth_failure) {
    badCommand(step.reply.code, step.reply.enhanced, step.reply.text);
    co_return;
  }

  const std::string* stored = nullptr;
  bool ok = false;
  if (step.kind == SaslStep::Kind::kCredentials) {
    stored = rt_->users->find(step.user);
    int workers = services_.workers ? static_cast<int>(services_.workers->threads()) : 0;
    PendingSlot slot(services_.auth_pending, kAuthPendingPerWorker * workers);
    if (!slot.held()) {
      spdlog::warn("session {}: AUTH from {}[{}] deferred: too many password checks in progress",
                   info_.id, info_.client_name, info_.client_ip.to_string());
      sodium_memzero(step.password.data(), step.password.size());
      reply(454, "4.7.0", "Temporary authentication failure, try again later");
      co_return;
    }
    // An unknown user is checked against a hash of the same cost, so that
    // the answer takes as long as for a wrong password (no enumeration).
    auto check = [hash = stored ? *stored : dummyHash(), pw = step.password]() mutable {
      bool match = verifyPassword(hash, pw);
      sodium_memzero(pw.data(), pw.size());
      return match;
    };
    sodium_memzero(step.password.data(), step.password.size());
    try {
      ok = co_await services_.workers->run(std::move(check)) && stored != nullptr;
    } catch (const std::exception& e) {
      spdlog::error("session {}: password check for {}[{}] failed: {}", info_.id, info_.client_name,
                    info_.client_ip.to_string(), e.what());
      reply(454, "4.7.0", "Temporary authentication failure, try again later");
      co_return;
    }
  }

  if (ok) {
    info_.auth_user = toLower(step.user);
    spdlog::info("session {}: {}[{}] authenticated as {} ({})", info_.id, info_.client_name,
                 info_.client_ip.to_string(), loggable(info_.auth_user), step.mechanism);
    reply(235, "2.7.0", "Authentication successful");
    co_return;
  }
  ++stats_.auth_failures;
  const char* why = step.kind == SaslStep::Kind::kError ? "authorization identity differs"
                    : stored == nullptr                 ? "no such user"
                                                        : "wrong password";
  spdlog::warn("session {}: AUTH {} failed for user \"{}\" from {}[{}]: {} ({} of {})", info_.id,
               step.mechanism, loggable(step.user), info_.client_name, info_.client_ip.to_string(),
               why, stats_.auth_failures, cfg.submission.max_auth_failures);
  if (stats_.auth_failures >= static_cast<uint32_t>(cfg.submission.max_auth_failures)) {
    reply(421, "4.7.0", cfg.hostname + " Error: too many authentication failures");
    closing_ = true;
    co_return;
  }
  reply(535, "5.7.8", "Authentication credentials invalid");
}

}  // namespace mxgate::smtp
