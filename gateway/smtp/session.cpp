#include "gateway/smtp/session.h"

#include <algorithm>
#include <ctime>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "gateway/auth/sasl.h"
#include "gateway/pipeline/policy.h"
#include "gateway/queue/queue_manager.h"
#include "gateway/smtp/command.h"
#include "gateway/smtp/data_reader.h"
#include "gateway/smtp/header_scan.h"
#include "gateway/smtp/message_edit.h"
#include "gateway/util/ip_set.h"

namespace mxgate::smtp {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr auto kFinalWriteTimeout = std::chrono::seconds(10);
using asio::use_awaitable;
using asio::experimental::as_tuple;

bool hasNonAscii(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

}  // namespace

Session::Session(asio::ip::tcp::socket socket, Services& services, ListenerKind listener)
    : services_(services),
      listener_(listener),
      socket_(std::move(socket)),
      watchdog_timer_(socket_.get_executor()) {}

void Session::armDeadline(std::chrono::milliseconds d) {
  auto now = std::chrono::steady_clock::now();
  auto next = std::min(now + d, session_deadline_);
  if (timed_out_) return;  // the final-write deadline stands
  bool earlier = next < deadline_;
  deadline_ = next;
  if (earlier) watchdog_timer_.cancel();
}

asio::awaitable<void> Session::watchdog() {
  auto self = shared_from_this();
  // Runs until run() finishes, not merely until the command loop ends: the
  // final reply and a TLS handshake are bounded by the deadline too.
  while (!finished_) {
    watchdog_timer_.expires_at(deadline_);
    co_await watchdog_timer_.async_wait(as_tuple(use_awaitable));
    if (finished_) break;
    if (std::chrono::steady_clock::now() < deadline_) continue;
    asio::error_code ignored;
    if (!timed_out_) {
      // First expiry: stop the pending read so the session can say 421.
      timed_out_ = true;
      stats_.timed_out = true;
      deadline_ = std::chrono::steady_clock::now() + kFinalWriteTimeout;
      socket_.cancel(ignored);
    } else {
      // The client did not even take the 421: drop it.
      socket_.close(ignored);
      break;
    }
  }
}

asio::awaitable<bool> Session::flush() {
  if (out_.empty()) co_return true;
  asio::error_code ec;
  if (tls_) {
    std::tie(ec, std::ignore) =
        co_await asio::async_write(*tls_, asio::buffer(out_), as_tuple(use_awaitable));
  } else {
    std::tie(ec, std::ignore) =
        co_await asio::async_write(socket_, asio::buffer(out_), as_tuple(use_awaitable));
  }
  out_.clear();
  co_return !ec;
}

asio::awaitable<size_t> Session::readSome() {
  if (!co_await flush()) co_return 0;
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  } else if (in_pos_ > kReadChunk) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
  size_t old = in_.size();
  in_.resize(old + kReadChunk);
  asio::error_code ec;
  size_t n = 0;
  auto buf = asio::buffer(in_.data() + old, kReadChunk);
  if (tls_) {
    std::tie(ec, n) = co_await tls_->async_read_some(buf, as_tuple(use_awaitable));
  } else {
    std::tie(ec, n) = co_await socket_.async_read_some(buf, as_tuple(use_awaitable));
  }
  in_.resize(old + n);
  co_return ec ? 0 : n;
}

asio::awaitable<Session::ReadResult> Session::readLine(std::string* line) {
  const size_t max = static_cast<size_t>(rt_->config.smtp.max_line_length);
  bool discarding = false;
  while (true) {
    size_t nl = in_.find('\n', in_pos_);
    if (nl != std::string::npos) {
      size_t len = nl + 1 - in_pos_;
      size_t start = in_pos_;
      in_pos_ = nl + 1;
      if (discarding || len > max) co_return ReadResult::kTooLong;
      size_t end = nl;
      if (end > start && in_[end - 1] == '\r') --end;
      line->assign(in_, start, end - start);
      co_return ReadResult::kLine;
    }
    if (in_.size() - in_pos_ > max) {
      // Over-long line: drop what we have and keep reading to its end
      // without buffering it (RFC 5321 4.5.3.1.4).
      discarding = true;
      in_pos_ = in_.size();
    }
    // While shutting down, a client that just finished a command gets a
    // short while to QUIT (or to hear 421 for anything else).
    armDeadline(shutting_down_ ? std::min<std::chrono::milliseconds>(
                                     rt_->config.smtp.command_timeout, std::chrono::seconds(2))
                               : rt_->config.smtp.command_timeout);
    awaiting_command_ = true;
    size_t n = co_await readSome();
    awaiting_command_ = false;
    if (n == 0) co_return ReadResult::kClosed;
  }
}

void Session::shutdown() {
  shutting_down_ = true;
  if (awaiting_command_) {
    asio::error_code ignored;
    socket_.cancel(ignored);
  }
}

void Session::reply(int code, std::string_view enhanced, std::string_view text) {
  out_ += std::to_string(code);
  out_ += ' ';
  if (!enhanced.empty()) {
    out_ += enhanced;
    out_ += ' ';
  }
  out_ += text;
  out_ += "\r\n";
}

void Session::badCommand(int code, std::string_view enhanced, std::string_view text) {
  ++stats_.bad_commands;
  if (stats_.bad_commands >= static_cast<uint32_t>(rt_->config.smtp.max_bad_commands)) {
    reply(421, "4.7.0", rt_->config.hostname + " Error: too many errors");
    closing_ = true;
    return;
  }
  reply(code, enhanced, text);
}

void Session::resetTransaction() {
  in_mail_ = false;
  queue_id_.clear();
  env_ = Envelope{};
  result_.clear();
  skip_content_ = false;
  rcpts_attempted_ = 0;
  message_.clear();
  message_.shrink_to_fit();
  timings_.clear();
}

asio::awaitable<StageResult> Session::runStage(Stage stage, const Recipient* rcpt) {
  const bool txn = stage >= Stage::kMail;
  ScanResult& res = txn ? result_ : session_result_;
  FilterContext ctx(info_, env_, rt_->symbols, res);
  if (skip_content_ || session_skip_content_) ctx.skipContent();
  ctx.setRecipient(rcpt);
  if (stage == Stage::kData) ctx.setMessage(message_);
  StageResult r = co_await rt_->pipeline.run(stage, ctx, &timings_);
  if (ctx.contentSkipped()) (txn ? skip_content_ : session_skip_content_) = true;
  co_return r;
}

asio::awaitable<void> Session::run() {
  auto self = shared_from_this();
  rt_ = services_.runtime.load();
  const Config& cfg = rt_->config;
  asio::error_code ec;
  auto remote = socket_.remote_endpoint(ec);
  if (ec) co_return;
  info_.id = services_.next_session_id.fetch_add(1);
  info_.client_ip = remote.address();
  info_.client_ip = canonicalAddress(info_.client_ip);
  info_.client_port = remote.port();
  info_.connected_at = std::chrono::system_clock::now();
  info_.trusted = cfg.trusted_networks.contains(info_.client_ip);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);

  auto now = std::chrono::steady_clock::now();
  session_deadline_ = now + cfg.smtp.session_timeout;
  deadline_ = std::min(now + cfg.smtp.command_timeout, session_deadline_);
  asio::co_spawn(socket_.get_executor(), watchdog(), asio::detached);
  tls_ctx_ = services_.tls.load();
  services_.registerSession(info_.id, [weak = weak_from_this(), ex = socket_.get_executor()] {
    asio::post(ex, [weak] {
      if (auto s = weak.lock()) s->shutdown();
    });
  });

  const std::string client = info_.client_name + "[" + info_.client_ip.to_string() + "]";
  spdlog::debug("session {}: connect from {}", info_.id, client);
  auto limit = services_.limiter.acquire(info_.client_ip, cfg.smtp.max_connections,
                                         cfg.smtp.max_connections_per_ip);
  bool refused_greeting = false;
  if (limit == ConnectionLimiter::Verdict::kTooManyTotal) {
    spdlog::warn("session {}: refused {}: too many connections ({})", info_.id, client,
                 cfg.smtp.max_connections);
    reply(421, "4.3.2", cfg.hostname + " Too many connections, try again later");
    closing_ = true;
  } else if (limit == ConnectionLimiter::Verdict::kTooManyFromIp) {
    spdlog::warn("session {}: refused {}: too many connections from this address ({})", info_.id,
                 client, cfg.smtp.max_connections_per_ip);
    reply(421, "4.7.0", cfg.hostname + " Too many connections from your address, try again later");
    closing_ = true;
  } else {
    limiter_slot_ = true;
    StageResult r = co_await runStage(Stage::kConnect);
    if (r.kind == StageResult::Kind::kContinue) {
      reply(220, "", cfg.hostname + " " + cfg.smtp.banner);
    } else {
      spdlog::info("session {}: {} refused at connect: {} {} {}", info_.id, client, r.reply.code,
                   r.reply.enhanced, r.reply.text);
      reply(r.reply);
      // RFC 5321 3.1: after a 554 greeting, wait for QUIT and answer 503.
      if (r.disconnect || r.reply.code != 554) closing_ = true;
      refused_greeting = true;
      ++stats_.messages_refused;
    }
  }

  while (!closing_) {
    std::string line;
    ReadResult rr = co_await readLine(&line);
    if (rr == ReadResult::kClosed) break;
    if (rr == ReadResult::kTooLong) {
      badCommand(500, "5.5.2", "Error: line too long");
      continue;
    }
    // Commands are printable text (RFC 5321 2.4); a CR, NUL or other control
    // byte inside one could smuggle a header into what we write (Received)
    // or a second command into a filter's view of this one.
    if (std::any_of(line.begin(), line.end(), [](char c) {
          auto u = static_cast<unsigned char>(c);
          return (u < 0x20 && c != '\t') || u == 0x7f;
        })) {
      badCommand(501, "5.5.2", "Error: control characters in command");
      continue;
    }
    Command cmd = parseCommand(line);
    // RFC 5321 3.8: while shutting down, answer any command but QUIT with 421.
    if (shutting_down_ && cmd.verb != Verb::kQuit) {
      reply(421, "4.3.2", cfg.hostname + " Service shutting down, closing connection");
      closing_ = true;
      break;
    }
    if (refused_greeting && cmd.verb != Verb::kQuit) {
      badCommand(503, "5.7.1", "Error: no service for you, send QUIT");
      continue;
    }
    co_await dispatch(cmd);
  }
  if (tls_failed_) {
    out_.clear();  // the stream is unusable; nothing more can be said
  } else if (shutting_down_ && !closing_) {
    reply(421, "4.3.2", cfg.hostname + " Service shutting down, closing connection");
  } else if (timed_out_) {
    spdlog::info("session {}: timeout from {}", info_.id, client);
    reply(421, "4.4.2", cfg.hostname + " Error: timeout exceeded");
  }
  if (!out_.empty()) {
    armDeadline(cfg.smtp.command_timeout);
    co_await flush();
  }
  closing_ = true;
  finished_ = true;
  services_.unregisterSession(info_.id);
  watchdog_timer_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  if (limiter_slot_) services_.limiter.release(info_.client_ip);
  rt_->pipeline.sessionEnded(info_, stats_);
  spdlog::debug("session {}: disconnect from {} accepted={} refused={} bad_rcpt={} bad_cmd={}",
                info_.id, client, stats_.messages_accepted, stats_.messages_refused,
                stats_.bad_recipients, stats_.bad_commands);
}

asio::awaitable<void> Session::dispatch(const Command& cmd) {
  const Config& cfg = rt_->config;
  switch (cmd.verb) {
    case Verb::kHelo:
      co_await onHelo(cmd, false);
      break;
    case Verb::kEhlo:
      co_await onHelo(cmd, true);
      break;
    case Verb::kMail:
      co_await onMail(cmd);
      break;
    case Verb::kRcpt:
      co_await onRcpt(cmd);
      break;
    case Verb::kData:
      co_await onData(cmd);
      break;
    case Verb::kStartTls:
      co_await onStartTls(cmd);
      break;
    case Verb::kRset:
      if (!cmd.arg.empty()) {
        badCommand(501, "5.5.4", "Syntax: RSET");
      } else {
        resetTransaction();
        reply(250, "2.0.0", "Ok");
      }
      break;
    case Verb::kNoop:
      reply(250, "2.0.0", "Ok");
      break;
    case Verb::kQuit:
      if (!cmd.arg.empty()) {
        badCommand(501, "5.5.4", "Syntax: QUIT");
      } else {
        reply(221, "2.0.0", "Bye");
        closing_ = true;
      }
      break;
    case Verb::kVrfy:
      onVrfy(cmd);
      break;
    case Verb::kExpn:
      badCommand(502, "5.5.1", "Error: EXPN is disabled");
      break;
    case Verb::kHelp:
      onHelp(cmd);
      break;
    case Verb::kAuth:
      co_await onAuth(cmd);
      break;
    case Verb::kBdat:
      badCommand(502, "5.5.1", "Error: CHUNKING is not offered");
      break;
    case Verb::kEmpty:
      badCommand(500, "5.5.2", "Error: bad syntax");
      break;
    case Verb::kUnknown:
      badCommand(500, "5.5.2", "Error: command not recognized");
      break;
  }
  (void)cfg;
}

asio::awaitable<void> Session::onHelo(const Command& cmd, bool esmtp) {
  const Config& cfg = rt_->config;
  if (cmd.arg.empty()) {
    badCommand(501, "5.5.4", esmtp ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
    co_return;
  }
  // A domain is at most 255 octets (RFC 1035 2.3.4); the name goes into
  // our Received header, whose lines must stay within 998 (RFC 5322 2.1.1).
  if (cmd.arg.size() > 255) {
    badCommand(501, "5.5.4", "Error: HELO/EHLO argument too long");
    co_return;
  }
  resetTransaction();
  info_.helo = std::string(cmd.arg);
  info_.esmtp = esmtp;
  StageResult r = co_await runStage(Stage::kHelo);
  if (r.kind != StageResult::Kind::kContinue) {
    helo_seen_ = false;
    reply(r.reply);
    if (r.disconnect) closing_ = true;
    co_return;
  }
  helo_seen_ = true;
  if (!esmtp) {
    reply(250, "", cfg.hostname);
    co_return;
  }
  std::vector<std::string> lines{cfg.hostname, "PIPELINING",
                                 "SIZE " + std::to_string(cfg.smtp.max_message_size)};
  if (cfg.smtp.vrfy) lines.push_back("VRFY");
  if (tls_ctx_ && !tls_) lines.push_back("STARTTLS");
  if (authOffered()) lines.push_back("AUTH " + std::string(kSaslMechanisms));
  for (const char* ext : {"ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8"})
    lines.push_back(ext);
  for (size_t i = 0; i < lines.size(); ++i) {
    out_ += i + 1 < lines.size() ? "250-" : "250 ";
    out_ += lines[i];
    out_ += "\r\n";
  }
}

asio::awaitable<void> Session::onMail(const Command& cmd) {
  const Config& cfg = rt_->config;
  if (!helo_seen_) {
    badCommand(503, "5.5.1", "Error: send HELO/EHLO first");
    co_return;
  }
  if (in_mail_) {
    badCommand(503, "5.5.1", "Error: nested MAIL command");
    co_return;
  }
  // RFC 6409 4.3: submission needs AUTH (and so first TLS, if required),
  // unless the client is known otherwise (relay.trusted_networks).
  if (listener_ == ListenerKind::kSubmission && info_.auth_user.empty() && !info_.trusted) {
    badCommand(530, "5.7.0",
               !tls_ && cfg.submission.require_tls ? "Must issue a STARTTLS command first"
                                                   : "Authentication required");
    co_return;
  }
  Path path;
  if (auto e = parsePath(cmd.arg, "FROM", true, &path)) {
    badCommand(e->code, e->enhanced, e->text);
    co_return;
  }
  Envelope env;
  env.mail_from = path.address;
  if (!path.params.empty() && !info_.esmtp) {
    badCommand(555, "5.5.4", "Error: ESMTP parameters need EHLO");
    co_return;
  }
  if (auto e = parseMailParams(path.params, cfg.smtp.max_message_size, &env)) {
    if (e->code == 552) {
      reply(e->code, e->enhanced, e->text);
    } else {
      badCommand(e->code, e->enhanced, e->text);
    }
    co_return;
  }
  if (!env.smtputf8 && hasNonAscii(env.mail_from)) {
    badCommand(553, "5.6.7", "Error: a non-ASCII address needs the SMTPUTF8 parameter");
    co_return;
  }
  resetTransaction();
  env_ = std::move(env);
  queue_id_ = newQueueId();
  result_ = session_result_;
  StageResult r = co_await runStage(Stage::kMail);
  if (r.kind != StageResult::Kind::kContinue) {
    spdlog::info("{}: client={}[{}] from=<{}> refused at MAIL: {} {} {}", queue_id_,
                 info_.client_name, info_.client_ip.to_string(), env_.mail_from, r.reply.code,
                 r.reply.enhanced, r.reply.text);
    reply(r.reply);
    ++stats_.messages_refused;
    if (r.disconnect) closing_ = true;
    resetTransaction();
    co_return;
  }
  in_mail_ = true;
  reply(250, "2.1.0", "Ok");
}

asio::awaitable<void> Session::onRcpt(const Command& cmd) {
  const Config& cfg = rt_->config;
  if (!in_mail_) {
    badCommand(503, "5.5.1", "Error: need MAIL command");
    co_return;
  }
  Path path;
  if (auto e = parsePath(cmd.arg, "TO", true, &path)) {
    badCommand(e->code, e->enhanced, e->text);
    co_return;
  }
  Recipient rcpt;
  rcpt.address = path.address;
  if (!path.params.empty() && !info_.esmtp) {
    badCommand(555, "5.5.4", "Error: ESMTP parameters need EHLO");
    co_return;
  }
  if (auto e = parseRcptParams(path.params, &rcpt)) {
    badCommand(e->code, e->enhanced, e->text);
    co_return;
  }
  if (!env_.smtputf8 && hasNonAscii(rcpt.address)) {
    badCommand(553, "5.6.7", "Error: a non-ASCII address needs the SMTPUTF8 parameter");
    co_return;
  }
  ++rcpts_attempted_;
  if (env_.rcpts.size() >= static_cast<size_t>(cfg.smtp.max_recipients)) {
    reply(452, "4.5.3", "Error: too many recipients");
    co_return;
  }
  const std::string domain = domainOf(rcpt.address);
  const std::string local = toLower(localPartOf(rcpt.address));
  const DomainConfig* dom = domain.empty() ? nullptr : cfg.findDomain(domain);
  // RFC 5321 4.5.1: postmaster of every domain we accept for is always accepted.
  const bool postmaster = local == "postmaster" && (domain.empty() || dom != nullptr);
  auto refuse = [&](int code, const char* enhanced, const std::string& text) {
    ++stats_.bad_recipients;
    spdlog::info("{}: client={}[{}] from=<{}> to=<{}> refused: {} {} {}", queue_id_,
                 info_.client_name, info_.client_ip.to_string(), env_.mail_from, rcpt.address, code,
                 enhanced, text);
    if (stats_.bad_recipients >= static_cast<uint32_t>(cfg.smtp.max_bad_recipients)) {
      reply(421, "4.7.0", cfg.hostname + " Error: too many unknown recipients, closing");
      closing_ = true;
      return;
    }
    reply(code, enhanced, text);
  };
  if (!postmaster) {
    if (dom != nullptr) {
      if (!dom->accept_all && !dom->users.count(local)) {
        refuse(550, "5.1.1", "<" + rcpt.address + ">: Recipient address rejected: User unknown");
        co_return;
      }
    } else if (!info_.trusted && info_.auth_user.empty()) {
      refuse(554, "5.7.1", "<" + rcpt.address + ">: Relay access denied");
      co_return;
    }
  }
  StageResult r = co_await runStage(Stage::kRcpt, &rcpt);
  if (r.kind != StageResult::Kind::kContinue) {
    reply(r.reply);
    if (r.disconnect) closing_ = true;
    co_return;
  }
  env_.rcpts.push_back(std::move(rcpt));
  reply(250, "2.1.5", "Ok");
}

void Session::onVrfy(const Command& cmd) {
  const Config& cfg = rt_->config;
  if (cmd.arg.empty()) {
    badCommand(501, "5.5.4", "Syntax: VRFY address");
    return;
  }
  std::string_view a = cmd.arg;
  if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
  bool word = !a.empty() && a.find('@') == std::string_view::npos &&
              std::all_of(a.begin(), a.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                       c == '_' || c == '+';
              });
  if (!word && !isValidMailbox(a, true)) {
    badCommand(501, "5.1.3", "Error: bad address syntax");
    return;
  }
  if (!cfg.smtp.vrfy) {
    reply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery");
    return;
  }
  const DomainConfig* dom = cfg.findDomain(domainOf(a));
  if (dom && (dom->accept_all || dom->users.count(toLower(localPartOf(a))))) {
    reply(250, "2.1.5", "<" + std::string(a) + ">");
  } else {
    reply(550, "5.1.1", "<" + std::string(a) + ">: Recipient address rejected: User unknown");
  }
}

void Session::onHelp(const Command& cmd) {
  static constexpr std::string_view kCommands =
      "HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS";
  if (!cmd.arg.empty()) {
    Command topic = parseCommand(cmd.arg);
    if (topic.verb == Verb::kUnknown || !topic.arg.empty()) {
      badCommand(501, "5.5.4", "Error: no help for that; commands: " + std::string(kCommands));
      return;
    }
  }
  reply(214, "2.0.0", "Commands: " + std::string(kCommands) + "; see RFC 5321");
}

asio::awaitable<void> Session::onStartTls(const Command& cmd) {
  if (!tls_ctx_) {
    badCommand(502, "5.5.1", "Error: STARTTLS is not offered");
    co_return;
  }
  if (tls_) {
    badCommand(503, "5.5.1", "Error: TLS already active");
    co_return;
  }
  if (!cmd.arg.empty()) {
    badCommand(501, "5.5.4", "Syntax: STARTTLS");
    co_return;
  }
  reply(220, "2.0.0", "Ready to start TLS");
  if (!co_await flush()) {
    closing_ = true;
    co_return;
  }
  // RFC 3207 5 (and CVE-2011-0411): anything pipelined after STARTTLS came
  // in clear text and must not be taken as a command of the TLS session.
  in_.clear();
  in_pos_ = 0;
  tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, *tls_ctx_);
  armDeadline(rt_->config.smtp.command_timeout);
  auto [ec] =
      co_await tls_->async_handshake(asio::ssl::stream_base::server, as_tuple(use_awaitable));
  if (ec) {
    spdlog::info("session {}: TLS handshake with {} failed: {}", info_.id,
                 info_.client_ip.to_string(), ec.message());
    tls_failed_ = true;
    closing_ = true;
    co_return;
  }
  info_.tls = true;
  // RFC 3207 4.2: the client must start over with EHLO, and nothing learnt
  // in clear text (such as an AUTH) carries over.
  helo_seen_ = false;
  info_.helo.clear();
  info_.auth_user.clear();
  resetTransaction();
}

asio::awaitable<void> Session::onData(const Command& cmd) {
  const Config& cfg = rt_->config;
  if (!cmd.arg.empty()) {
    badCommand(501, "5.5.4", "Syntax: DATA");
    co_return;
  }
  if (!in_mail_) {
    badCommand(503, "5.5.1", "Error: need MAIL command");
    co_return;
  }
  if (env_.rcpts.empty()) {
    if (rcpts_attempted_ > 0) {
      reply(554, "5.5.1", "Error: no valid recipients");
    } else {
      badCommand(503, "5.5.1", "Error: need RCPT command");
    }
    co_return;
  }
  reply(354, "", "End data with <CR><LF>.<CR><LF>");
  data_started_ = std::chrono::steady_clock::now();
  message_.clear();
  message_.reserve(std::min<uint64_t>(env_.declared_size ? env_.declared_size + 1024 : 64 * 1024,
                                      cfg.smtp.max_message_size));
  DataReader reader(&message_, cfg.smtp.max_message_size, cfg.smtp.bare_newline);
  while (true) {
    in_pos_ += reader.feed(std::string_view(in_).substr(in_pos_));
    if (reader.done()) break;
    armDeadline(cfg.smtp.command_timeout);
    if (co_await readSome() == 0) {
      // The client went away mid-DATA: nothing was acknowledged, nothing kept.
      spdlog::info("{}: client={}[{}] lost connection in DATA after {} bytes", queue_id_,
                   info_.client_name, info_.client_ip.to_string(), reader.contentSize());
      closing_ = true;
      co_return;
    }
  }
  co_await finishMessage(reader.sawBareLf(), reader.sawBareCr(), reader.oversize());
}

std::string Session::traceLine() const {
  std::string s;
  for (const SymbolHit& h : result_.hits()) {
    if (!s.empty()) s += ' ';
    s += fmt::format("{}({:.2f})", h.name, h.weight);
    if (!h.detail.empty()) s += "[" + h.detail + "]";
  }
  return s;
}

void Session::logMessage(std::string_view action, const Reply& r, std::chrono::microseconds spent,
                         const std::string* trace) {
  std::string rcpts;
  for (const Recipient& rc : env_.rcpts) {
    if (!rcpts.empty()) rcpts += ',';
    rcpts += "<" + rc.address + ">";
  }
  std::string timing;
  for (const FilterTiming& t : timings_) {
    if (!timing.empty()) timing += ',';
    timing += fmt::format("{}:{:.3f}ms", t.filter, t.spent.count() / 1000.0);
  }
  spdlog::info(
      "{}: client={}[{}]{} helo=<{}> from=<{}> to={} size={} action={} score={:.2f} symbols=\"{}\" "
      "filters=\"{}\" time={:.3f}ms reply=\"{} {} {}\"",
      queue_id_, info_.client_name, info_.client_ip.to_string(),
      info_.auth_user.empty() ? "" : " user=<" + info_.auth_user + ">", info_.helo, env_.mail_from,
      rcpts, message_.size(), action, result_.score(), trace ? *trace : traceLine(), timing,
      spent.count() / 1000.0, r.code, r.enhanced, r.text);
}

asio::awaitable<void> Session::finishMessage(bool bare_lf, bool bare_cr, bool oversize) {
  const Config& cfg = rt_->config;
  auto spent = [&] {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 data_started_);
  };
  auto refuse = [&](Reply r, std::string_view action) {
    ++stats_.messages_refused;
    logMessage(action, r, spent());
    reply(r);
    resetTransaction();
  };
  // In normalize mode a bare LF was stored as CRLF and is no reason to
  // refuse; a bare CR always is.
  if (bare_cr || (bare_lf && cfg.smtp.bare_newline == BareNewline::kReject)) {
    refuse({550, "5.5.2",
            std::string("Message refused: bare ") + (bare_cr ? "CR" : "LF") +
                " in message; lines must end with CRLF (RFC 5321 2.3.8)"},
           "refuse_bare_newline");
    co_return;
  }
  if (oversize) {
    refuse({552, "5.3.4", "Message size exceeds fixed maximum message size"}, "refuse_size");
    co_return;
  }
  if (countHeader(message_, "Received") > static_cast<size_t>(cfg.smtp.max_hops)) {
    refuse({554, "5.4.6", "Too many hops: mail loop detected"}, "refuse_loop");
    co_return;
  }
  StageResult sr = co_await runStage(Stage::kData);
  if (sr.kind != StageResult::Kind::kContinue) {
    refuse(sr.reply, sr.kind == StageResult::Kind::kReject ? "reject" : "tempfail");
    if (sr.disconnect) closing_ = true;
    co_return;
  }
  Action action = std::max(decideAction(cfg.policy, result_.score()), result_.requiredAction());
  if (action == Action::kReject) {
    refuse({550, "5.7.1", cfg.policy.reject_text}, "reject");
    co_return;
  }
  Reply ok{250, "2.0.0", "Ok: queued as " + queue_id_};
  if (action == Action::kDiscard) {
    // Accepted and dropped on purpose: the sender is told nothing.
    ++stats_.messages_accepted;
    logMessage("discard", ok, spent());
    reply(ok);
    resetTransaction();
    co_return;
  }
  std::string trace = traceLine();  // one string for the header, the spool and the log
  MessageEdit edit = buildMessageEdit(
      MessageEditInput{cfg, info_, env_, queue_id_, result_, action, trace}, message_);
  SpoolMeta meta;
  meta.queue_id = queue_id_;
  meta.received_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  meta.client_ip = info_.client_ip.to_string();
  meta.client_name = info_.client_name;
  meta.helo = info_.helo;
  meta.protocol = protocolName(info_);
  meta.auth_user = info_.auth_user;
  meta.envelope = env_;
  meta.action = actionName(action);
  meta.score = result_.score();
  meta.symbols = std::move(trace);
  auto [ec, loc] = co_await services_.spool->write(encodeMeta(meta), edit.parts());
  if (ec) {
    Reply r{451, "4.3.0", "Temporary local problem: cannot queue message, try again later"};
    spdlog::error("{}: spool write failed: {}", queue_id_, ec.message());
    refuse(r, "tempfail_spool");
    co_return;
  }
  // Durable now; hand it to delivery before saying 250 (enqueue never blocks).
  if (services_.queue != nullptr) services_.queue->enqueue(meta, loc);
  ++stats_.messages_accepted;
  logMessage(actionName(action), ok, spent(), &meta.symbols);
  reply(ok);
  resetTransaction();
}

}  // namespace mxgate::smtp
