// One SMTP server session (RFC 5321 with ESMTP), run as a coroutine on the
// event-loop thread that accepted it; nothing in it is shared with other
// threads except through Services.
//
// Reply discipline: replies are buffered and flushed whenever the session is
// about to wait for input, which gives PIPELINING (RFC 2920) for free and
// never leaves a client waiting for an answer we hold.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>

#include "gateway/pipeline/filter.h"
#include "gateway/pipeline/pipeline.h"
#include "gateway/smtp/services.h"

namespace mxgate::smtp {

struct Command;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::ip::tcp::socket socket, Services& services, ListenerKind listener);
  // Runs the whole session; returns when it is closed.
  asio::awaitable<void> run();
  // The daemon is stopping: an idle session says 421 at once, a busy one
  // after its current command. Call on the session's own thread.
  void shutdown();

 private:
  enum class ReadResult { kLine, kTooLong, kClosed };

  // I/O
  asio::awaitable<size_t> readSome();
  asio::awaitable<ReadResult> readLine(std::string* line);
  asio::awaitable<bool> flush();
  asio::awaitable<void> watchdog();
  void armDeadline(std::chrono::milliseconds d);
  void reply(int code, std::string_view enhanced, std::string_view text);
  void reply(const Reply& r) { reply(r.code, r.enhanced, r.text); }

  // Commands
  asio::awaitable<void> dispatch(const Command& cmd);
  asio::awaitable<void> onHelo(const Command& cmd, bool esmtp);
  asio::awaitable<void> onMail(const Command& cmd);
  asio::awaitable<void> onRcpt(const Command& cmd);
  asio::awaitable<void> onData(const Command& cmd);
  asio::awaitable<void> onStartTls(const Command& cmd);
  // SMTP AUTH (RFC 4954), in session_auth.cpp.
  asio::awaitable<void> onAuth(const Command& cmd);
  bool authOffered() const;  // AUTH is in EHLO now
  void onVrfy(const Command& cmd);
  void onHelp(const Command& cmd);
  void badCommand(int code, std::string_view enhanced, std::string_view text);
  void resetTransaction();

  // End of DATA.
  asio::awaitable<void> finishMessage(bool bare_lf, bool bare_cr, bool oversize);
  std::string traceLine() const;
  // trace: the symbol list if already built (else it is built here).
  void logMessage(std::string_view action, const Reply& r, std::chrono::microseconds spent,
                  const std::string* trace = nullptr);

  asio::awaitable<StageResult> runStage(Stage stage, const Recipient* rcpt = nullptr);

  Services& services_;
  const ListenerKind listener_;
  std::shared_ptr<const Runtime> rt_;
  asio::ip::tcp::socket socket_;
  std::shared_ptr<asio::ssl::context> tls_ctx_;  // what EHLO offered; outlives tls_
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
  asio::steady_timer watchdog_timer_;
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::time_point session_deadline_;
  bool timed_out_ = false;
  bool closing_ = false;           // leave the command loop
  bool finished_ = false;          // run() is done; the watchdog may stop
  bool shutting_down_ = false;     // the daemon is stopping
  bool awaiting_command_ = false;  // blocked reading a command line
  bool tls_failed_ = false;        // a handshake failed: nothing more can be written
  bool limiter_slot_ = false;

  std::string in_;
  size_t in_pos_ = 0;  // start of unconsumed input in in_
  std::string out_;

  SessionInfo info_;
  SessionStats stats_;
  ScanResult session_result_;  // symbols from connect/helo, copied into each message
  bool helo_seen_ = false;

  // The transaction (MAIL to end of DATA).
  bool in_mail_ = false;
  std::string queue_id_;
  Envelope env_;
  ScanResult result_;
  bool skip_content_ = false;
  bool session_skip_content_ = false;  // set by connect/helo-stage allow lists
  int rcpts_attempted_ = 0;
  std::string message_;
  std::vector<FilterTiming> timings_;
  std::chrono::steady_clock::time_point data_started_;
};

}  // namespace mxgate::smtp
