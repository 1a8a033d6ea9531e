#include "gateway/smtp_client/connection.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>

#include <algorithm>
#include <optional>
#include <tuple>
#include <variant>

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/host_name_verification.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "gateway/smtp_client/data_encoder.h"
#include "gateway/util/strings.h"

namespace mxgate::smtp_client {

namespace {

using asio::use_awaitable;
using asio::experimental::as_tuple;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 16 * 1024;
// Message data is encoded into chunks of about this size, each one write.
constexpr size_t kDataChunk = 64 * 1024;
// Runs op, cancelling it after d. nullopt: it timed out.
template <typename T>
asio::awaitable<std::optional<T>> timed(asio::awaitable<T> op, std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  auto r = co_await (std::move(op) || timer.async_wait(use_awaitable));
  if (r.index() == 0) co_return std::move(std::get<0>(r));
  co_return std::nullopt;
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// A peer's text, safe to put in a log line or a DSN.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 120)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

bool isIpLiteral(const std::string& name) {
  std::error_code ec;
  asio::ip::make_address(name, ec);
  return !ec;
}

}  // namespace

bool isCleanPath(std::string_view address) {
  return std::none_of(address.begin(), address.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f || c == '<' || c == '>';
  });
}

std::string Endpoint::label() const {
  return name + "[" + address.to_string() + "]:" + std::to_string(port);
}

std::shared_ptr<asio::ssl::context> makeClientTlsContext(const std::string& ca_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3);
  if (ca_file.empty()) {
    ctx->set_default_verify_paths();
  } else {
    ctx->load_verify_file(ca_file);
  }
  ctx->set_verify_mode(asio::ssl::verify_none);
  return ctx;
}

SmtpConnection::SmtpConnection(asio::any_io_executor executor, ClientOptions options)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      socket_(executor_),
      tls_ctx_(options_.tls_context) {}

SmtpConnection::~SmtpConnection() {
  close();
}

void SmtpConnection::close() {
  std::error_code ignored;
  if (socket_.is_open()) socket_.close(ignored);
  open_ = false;
}

bool SmtpConnection::peerSpoke() {
  if (!socket_.is_open()) return true;
  if (in_pos_ < in_.size()) return true;
  pollfd p{socket_.native_handle(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

SmtpReply SmtpConnection::ioFailure(const std::error_code& ec, Stage stage,
                                    std::string_view doing) {
  broken_ = true;
  io_failed_ = true;
  std::string text;
  if (ec == asio::error::timed_out) {
    text = "timeout while " + std::string(doing);
  } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
    text = "connection closed by the server while " + std::string(doing);
  } else {
    text = "connection error while " + std::string(doing) + ": " + ec.message();
  }
  return localReply(451, "4.4.2", text, stage, label_, true);
}

SmtpReply SmtpConnection::hostFailure(SmtpReply r) {
  broken_ = true;
  r.host_level = true;
  return r;
}

asio::awaitable<bool> SmtpConnection::writeAll(std::string_view data,
                                               std::chrono::milliseconds timeout,
                                               SmtpReply* failure, Stage stage) {
  std::optional<std::tuple<std::error_code, size_t>> r;
  if (tls_) {
    r = co_await timed(asio::async_write(*tls_, asio::buffer(data), as_tuple(use_awaitable)),
                       timeout);
  } else {
    r = co_await timed(asio::async_write(socket_, asio::buffer(data), as_tuple(use_awaitable)),
                       timeout);
  }
  std::error_code ec = r ? std::get<0>(*r) : make_error_code(asio::error::timed_out);
  if (!ec) co_return true;
  *failure = ioFailure(ec, stage, "sending");
  co_return false;
}

asio::awaitable<bool> SmtpConnection::readLine(std::chrono::milliseconds timeout,
                                               std::string_view* line, SmtpReply* failure,
                                               Stage stage) {
  for (;;) {
    size_t nl = in_.find('\n', in_pos_);
    if (nl != std::string::npos) {
      size_t end = nl;
      if (end > in_pos_ && in_[end - 1] == '\r') --end;
      *line = std::string_view(in_).substr(in_pos_, end - in_pos_);
      in_pos_ = nl + 1;
      co_return true;
    }
    if (in_.size() - in_pos_ > kMaxReplyLine + 2) {
      broken_ = io_failed_ = true;
      *failure = localReply(451, "4.5.0", "reply line too long", stage, label_, true);
      co_return false;
    }
    if (in_pos_ > 0) {
      in_.erase(0, in_pos_);
      in_pos_ = 0;
    }
    const size_t old = in_.size();
    in_.resize(old + kReadChunk);
    auto buf = asio::buffer(in_.data() + old, kReadChunk);
    std::optional<std::tuple<std::error_code, size_t>> r;
    if (tls_) {
      r = co_await timed(tls_->async_read_some(buf, as_tuple(use_awaitable)), timeout);
    } else {
      r = co_await timed(socket_.async_read_some(buf, as_tuple(use_awaitable)), timeout);
    }
    in_.resize(old + (r ? std::get<1>(*r) : 0));
    std::error_code ec = r ? std::get<0>(*r) : make_error_code(asio::error::timed_out);
    if (ec) {
      *failure = ioFailure(ec, stage, "reading the reply");
      co_return false;
    }
  }
}

asio::awaitable<SmtpReply> SmtpConnection::readReply(Stage stage,
                                                     std::chrono::milliseconds timeout) {
  parser_.clear();
  for (;;) {
    std::string_view line;
    SmtpReply failure;
    if (!co_await readLine(timeout, &line, &failure, stage)) co_return failure;
    ReplyParser::Status st = parser_.addLine(line);
    if (st == ReplyParser::Status::kBad) {
      broken_ = io_failed_ = true;
      co_return localReply(451, "4.5.0", "malformed reply: " + printable(line), stage, label_,
                           true);
    }
    if (st == ReplyParser::Status::kDone) break;
  }
  SmtpReply r = parser_.reply(stage, label_);
  // 421: the server is closing the session (RFC 5321 3.8).
  if (r.code == 421) r = hostFailure(std::move(r));
  co_return r;
}

asio::awaitable<SmtpReply> SmtpConnection::command(std::string_view line, Stage stage,
                                                   std::chrono::milliseconds timeout) {
  out_.assign(line);
  out_ += "\r\n";
  SmtpReply failure;
  bool written = co_await writeAll(out_, timeout, &failure, stage);
  out_.clear();  // may hold credentials
  if (!written) co_return failure;
  co_return co_await readReply(stage, timeout);
}

asio::awaitable<SmtpReply> SmtpConnection::open(Endpoint endpoint) {
  endpoint_ = std::move(endpoint);
  label_ = endpoint_.label();
  const Timeouts& t = options_.timeouts;
  const std::string& helo = options_.helo_name;
  if (helo.empty() || !isCleanPath(helo) || helo.find(' ') != std::string::npos) {
    co_return localReply(451, "4.3.5", "bad helo_name '" + printable(helo) + "'", Stage::kHelo,
                         label_, true);
  }
  asio::ip::tcp::endpoint ep(endpoint_.address, endpoint_.port);
  auto r = co_await timed(socket_.async_connect(ep, as_tuple(use_awaitable)), t.connect);
  std::error_code ec = r ? std::get<0>(*r) : make_error_code(asio::error::timed_out);
  if (ec) {
    close();
    broken_ = io_failed_ = true;
    std::string text =
        ec == asio::error::timed_out ? "connection timed out" : "connect failed: " + ec.message();
    co_return localReply(451, "4.4.1", text, Stage::kConnect, label_, true);
  }
  open_ = true;
  opened_at_ = Clock::now();
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);

  SmtpReply greeting = co_await readReply(Stage::kGreeting, t.greeting);
  if (greeting.local) co_return greeting;
  if (greeting.code / 100 != 2) co_return hostFailure(std::move(greeting));
  if (SmtpReply f = co_await hello(); !f.empty()) co_return f;
  if (SmtpReply f = co_await startTls(); !f.empty()) co_return f;
  if (SmtpReply f = co_await authenticate(); !f.empty()) co_return f;
  co_return SmtpReply{};
}

asio::awaitable<SmtpReply> SmtpConnection::hello() {
  const auto timeout = options_.timeouts.command;
  caps_ = Capabilities{};
  SmtpReply r = co_await command("EHLO " + options_.helo_name, Stage::kHelo, timeout);
  if (r.local) co_return r;
  if (r.code / 100 == 2) {
    caps_.esmtp = true;
    parseEhlo(parser_.lines());
    co_return SmtpReply{};
  }
  if (r.code / 100 != 5) co_return hostFailure(std::move(r));
  // A server without ESMTP (RFC 5321 3.2): no extensions at all.
  r = co_await command("HELO " + options_.helo_name, Stage::kHelo, timeout);
  if (r.local) co_return r;
  if (r.code / 100 == 2) co_return SmtpReply{};
  co_return hostFailure(std::move(r));
}

void SmtpConnection::parseEhlo(const std::vector<std::string>& lines) {
  // lines[0] is the server's name and greeting; each further line one keyword.
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view l = lines[i];
    size_t sp = l.find_first_of(" =");
    std::string_view kw = l.substr(0, sp);
    std::string_view arg = sp == std::string_view::npos ? std::string_view() : l.substr(sp + 1);
    if (iequals(kw, "PIPELINING")) {
      caps_.pipelining = true;
    } else if (iequals(kw, "STARTTLS")) {
      caps_.starttls = true;
    } else if (iequals(kw, "8BITMIME")) {
      caps_.eight_bit_mime = true;
    } else if (iequals(kw, "SMTPUTF8")) {
      caps_.smtputf8 = true;
    } else if (iequals(kw, "DSN")) {
      caps_.dsn = true;
    } else if (iequals(kw, "SIZE")) {
      caps_.size_offered = true;
      uint64_t v = 0;
      bool digits = !arg.empty() && arg.size() <= 19;
      for (char c : arg) {
        if (c < '0' || c > '9') digits = false;
        if (digits) v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      caps_.size_limit = digits ? v : 0;
    } else if (iequals(kw, "AUTH")) {
      // "AUTH PLAIN LOGIN", or the old "AUTH=PLAIN LOGIN" form.
      while (!arg.empty()) {
        size_t e = arg.find(' ');
        std::string_view mech = arg.substr(0, e);
        if (iequals(mech, "PLAIN")) caps_.auth_plain = true;
        if (iequals(mech, "LOGIN")) caps_.auth_login = true;
        arg = e == std::string_view::npos ? std::string_view() : arg.substr(e + 1);
      }
    }
  }
}

asio::awaitable<SmtpReply> SmtpConnection::startTls() {
  const TlsPolicy policy = options_.tls;
  if (policy == TlsPolicy::kNone) co_return SmtpReply{};
  const bool required = policy != TlsPolicy::kMay;
  if (!caps_.starttls) {
    if (!required) co_return SmtpReply{};
    co_return hostFailure(localReply(451, "4.7.4",
                                     "TLS is required, but the server does not offer STARTTLS",
                                     Stage::kStartTls, label_, true));
  }
  SmtpReply r = co_await command("STARTTLS", Stage::kStartTls, options_.timeouts.command);
  if (r.local || r.code == 421) co_return r;
  if (r.code != 220) {
    // Opportunistic TLS goes on in plain text when STARTTLS is refused.
    if (!required) co_return SmtpReply{};
    co_return hostFailure(localReply(
        451, "4.7.4",
        "TLS is required, but STARTTLS was refused: " + std::to_string(r.code) + " " + r.text,
        Stage::kStartTls, label_, true));
  }
  if (in_pos_ < in_.size()) {
    // Bytes after the 220 came in clear text and could be injected replies
    // for the TLS session (the client side of CVE-2011-0411).
    broken_ = io_failed_ = true;
    co_return localReply(451, "4.7.0", "data after the STARTTLS reply", Stage::kStartTls, label_,
                         true);
  }
  in_.clear();
  in_pos_ = 0;
  if (!tls_ctx_) {
    try {
      tls_ctx_ = makeClientTlsContext(options_.ca_file);
    } catch (const std::exception& e) {
      co_return hostFailure(localReply(451, "4.7.5", std::string("TLS setup failed: ") + e.what(),
                                       Stage::kStartTls, label_, true));
    }
  }
  tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, *tls_ctx_);
  const std::string& name = endpoint_.name;
  if (!name.empty() && !isIpLiteral(name))
    SSL_set_tlsext_host_name(tls_->native_handle(), name.c_str());
  if (policy == TlsPolicy::kVerify) {
    tls_->set_verify_mode(asio::ssl::verify_peer);
    tls_->set_verify_callback(asio::ssl::host_name_verification(name));
  }
  auto hr =
      co_await timed(tls_->async_handshake(asio::ssl::stream_base::client, as_tuple(use_awaitable)),
                     options_.timeouts.tls_handshake);
  std::error_code ec = hr ? std::get<0>(*hr) : make_error_code(asio::error::timed_out);
  if (ec) {
    broken_ = io_failed_ = true;
    std::string why = ec == asio::error::timed_out ? "timeout" : ec.message();
    long verify = SSL_get_verify_result(tls_->native_handle());
    if (policy == TlsPolicy::kVerify && verify != X509_V_OK) {
      why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    }
    co_return localReply(451, "4.7.5", "TLS handshake failed: " + why, Stage::kStartTls, label_,
                         true);
  }
  // RFC 3207 4.2: forget what was learned before TLS and greet again.
  co_return co_await hello();
}

asio::awaitable<SmtpReply> SmtpConnection::authenticate() {
  const std::string& user = options_.auth_user;
  const std::string& password = options_.auth_password;
  if (user.empty()) co_return SmtpReply{};
  if (!tls_ && !options_.auth_over_plaintext) {
    co_return hostFailure(localReply(451, "4.7.0",
                                     "credentials are not sent over an unencrypted connection",
                                     Stage::kAuth, label_, true));
  }
  if (!caps_.auth_plain && !caps_.auth_login) {
    co_return hostFailure(localReply(451, "4.7.0",
                                     "the server offers no AUTH mechanism we use (PLAIN, LOGIN)",
                                     Stage::kAuth, label_, true));
  }
  const auto timeout = options_.timeouts.command;
  SmtpReply r;
  if (caps_.auth_plain) {
    // RFC 4616: authzid NUL authcid NUL passwd, as the initial response.
    std::string token;
    token.reserve(user.size() + password.size() + 2);
    token.push_back('\0');
    token += user;
    token.push_back('\0');
    token += password;
    const std::string encoded = base64(token);
    r = co_await command("AUTH PLAIN " + encoded, Stage::kAuth, timeout);
    // A server that wants the response after an empty challenge.
    if (!r.local && r.code == 334) r = co_await command(encoded, Stage::kAuth, timeout);
  } else {
    r = co_await command("AUTH LOGIN", Stage::kAuth, timeout);
    if (!r.local && r.code == 334) r = co_await command(base64(user), Stage::kAuth, timeout);
    if (!r.local && r.code == 334) r = co_await command(base64(password), Stage::kAuth, timeout);
  }
  if (r.local) co_return r;
  if (r.code / 100 == 2) {
    authenticated_ = true;
    co_return SmtpReply{};
  }
  // 535 (bad credentials) and other 5xx: permanent for this host; 454 and
  // other 4xx: temporary. A further 334 means the dialogue went wrong.
  co_return hostFailure(std::move(r));
}

asio::awaitable<void> SmtpConnection::quit() {
  if (open_ && !io_failed_) {
    SmtpReply ignored = co_await command("QUIT", Stage::kNone, options_.timeouts.quit);
    (void)ignored;
  }
  close();
}

asio::awaitable<SmtpReply> SmtpConnection::writeData(const OutboundMessage& msg) {
  const auto timeout = options_.timeouts.data_block;
  DataEncoder enc;
  data_.clear();
  data_.reserve(3 * kDataChunk + 8);
  SmtpReply failure;
  for (std::string_view part : msg.parts) {
    while (!part.empty()) {
      const size_t n = std::min(part.size(), kDataChunk);
      enc.encode(part.substr(0, n), &data_);
      part.remove_prefix(n);
      if (data_.size() >= kDataChunk) {
        if (!co_await writeAll(data_, timeout, &failure, Stage::kDot)) co_return failure;
        data_.clear();
      }
    }
  }
  enc.finish(&data_);
  bool ok = co_await writeAll(data_, timeout, &failure, Stage::kDot);
  data_.clear();
  co_return ok ? SmtpReply{} : failure;
}

}  // namespace mxgate::smtp_client
