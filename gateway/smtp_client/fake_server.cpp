#include "gateway/smtp_client/fake_server.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "gateway/util/strings.h"

namespace mxgate::smtp_client::testing {

using asio::use_awaitable;
using asio::experimental::as_tuple;

struct FakeSmtpServer::Session {
  explicit Session(asio::ip::tcp::socket s) : socket(std::move(s)) {}
  asio::ip::tcp::socket socket;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls;
  std::string in;
  size_t record = 0;  // index into records

  asio::awaitable<bool> write(std::string_view data) {
    std::error_code ec;
    if (tls) {
      std::tie(ec, std::ignore) =
          co_await asio::async_write(*tls, asio::buffer(data), as_tuple(use_awaitable));
    } else {
      std::tie(ec, std::ignore) =
          co_await asio::async_write(socket, asio::buffer(data), as_tuple(use_awaitable));
    }
    co_return !ec;
  }

  // One line without its LF (a CR before it is kept out too); false at EOF.
  asio::awaitable<bool> readLine(std::string* line, size_t* waiting) {
    for (;;) {
      size_t nl = in.find('\n');
      if (nl != std::string::npos) {
        *line = in.substr(0, nl);
        if (!line->empty() && line->back() == '\r') line->pop_back();
        in.erase(0, nl + 1);
        *waiting = static_cast<size_t>(std::count(in.begin(), in.end(), '\n'));
        co_return true;
      }
      char buf[8192];
      std::error_code ec;
      size_t n = 0;
      if (tls) {
        std::tie(ec, n) = co_await tls->async_read_some(asio::buffer(buf), as_tuple(use_awaitable));
      } else {
        std::tie(ec, n) =
            co_await socket.async_read_some(asio::buffer(buf), as_tuple(use_awaitable));
      }
      if (ec) co_return false;
      in.append(buf, n);
    }
  }
};

namespace {

std::string b64decode(std::string_view in) {
  std::string out(in.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return {};
  // EVP_DecodeBlock counts padding as zero bytes.
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string verbOf(const std::string& cmd) {
  std::string v = cmd.substr(0, cmd.find(' '));
  for (char& c : v) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return v;
}

}  // namespace

FakeSmtpServer::FakeSmtpServer(asio::io_context& ctx)
    : ctx_(ctx), acceptor_(ctx, {asio::ip::make_address("127.0.0.1"), 0}) {
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(ctx_, acceptLoop(), asio::detached);
}

FakeSmtpServer::~FakeSmtpServer() {
  stop();
}

void FakeSmtpServer::stop() {
  stopped_ = true;
  std::error_code ignored;
  acceptor_.close(ignored);
  dropConnections();
}

void FakeSmtpServer::dropConnections() {
  std::error_code ignored;
  for (auto& w : sessions_) {
    if (auto s = w.lock()) s->socket.close(ignored);
  }
}

std::vector<std::string> FakeSmtpServer::allCommands() const {
  std::vector<std::string> out;
  for (const Record& r : records) out.insert(out.end(), r.commands.begin(), r.commands.end());
  return out;
}

asio::awaitable<void> FakeSmtpServer::acceptLoop() {
  while (!stopped_) {
    auto [ec, sock] = co_await acceptor_.async_accept(as_tuple(use_awaitable));
    if (ec) break;
    sock.set_option(asio::ip::tcp::no_delay(true), ec);
    auto s = std::make_shared<Session>(std::move(sock));
    s->record = records.size();
    records.emplace_back();
    sessions_.push_back(s);
    asio::co_spawn(ctx_, serve(s), asio::detached);
  }
}

asio::awaitable<void> FakeSmtpServer::serve(std::shared_ptr<Session> s) {
  auto rec = [this, &s]() -> Record& { return records[s->record]; };
  // An empty greeting: say nothing (for greeting timeouts).
  if (!greeting.empty() && !co_await s->write(greeting + "\r\n")) co_return;
  std::string line;
  size_t waiting = 0;
  while (co_await s->readLine(&line, &waiting)) {
    rec().commands.push_back(line);
    rec().waiting.push_back(waiting);
    const std::string verb = verbOf(line);
    std::optional<std::string> scripted = reply ? reply(line) : std::nullopt;
    std::string out;
    bool start_tls = false;
    if (scripted) {
      out = *scripted;
      if (out == kClose) co_return;
      if (out == kHang) break;
    } else if (verb == "EHLO") {
      std::vector<std::string> ext = extensions;
      if (tls && !s->tls) ext.push_back("STARTTLS");
      if (!auth_mechanisms.empty()) {
        std::string a = "AUTH";
        for (const auto& m : auth_mechanisms) a += " " + m;
        ext.push_back(a);
      }
      out = "250";
      out += ext.empty() ? " " : "-";
      out += "fake.test";
      for (size_t i = 0; i < ext.size(); ++i) {
        out += "\r\n250";
        out += i + 1 == ext.size() ? " " : "-";
        out += ext[i];
      }
    } else if (verb == "STARTTLS" && tls && !s->tls) {
      out = "220 2.0.0 go ahead";
      start_tls = true;
    } else if (verb == "AUTH") {
      std::string mech = verbOf(line.substr(5));
      std::string u, p;
      if (mech == "PLAIN") {
        std::string token = b64decode(line.size() > 11 ? line.substr(11) : "");
        size_t a = token.find('\0');
        size_t b = a == std::string::npos ? a : token.find('\0', a + 1);
        if (b != std::string::npos) {
          u = token.substr(a + 1, b - a - 1);
          p = token.substr(b + 1);
        }
      } else if (mech == "LOGIN") {
        std::string l1, l2;
        if (!co_await s->write("334 VXNlcm5hbWU6\r\n") || !co_await s->readLine(&l1, &waiting)) {
          co_return;
        }
        if (!co_await s->write("334 UGFzc3dvcmQ6\r\n") || !co_await s->readLine(&l2, &waiting)) {
          co_return;
        }
        u = b64decode(l1);
        p = b64decode(l2);
      }
      if (!u.empty() && u == user && p == password) {
        rec().auth = u;
        out = "235 2.7.0 Authentication successful";
      } else {
        out = "535 5.7.8 Authentication credentials invalid";
      }
    } else if (verb == "DATA") {
      if (!co_await s->write("354 End data with <CR><LF>.<CR><LF>\r\n")) co_return;
      std::string data;
      std::string l;
      for (;;) {
        if (!co_await s->readLine(&l, &waiting)) co_return;
        data += l;
        data += "\r\n";
        if (l == ".") break;
      }
      rec().messages.push_back(std::move(data));
      std::optional<std::string> end = reply ? reply(".") : std::nullopt;
      out = end ? *end : "250 2.0.0 Ok: queued as FAKE";
      if (out == kClose) co_return;
      if (out == kHang) break;
    } else if (verb == "QUIT") {
      co_await s->write("221 2.0.0 Bye\r\n");
      co_return;
    } else if (verb == "HELO" || verb == "MAIL" || verb == "RCPT" || verb == "RSET" ||
               verb == "NOOP") {
      out = "250 2.0.0 Ok";
    } else {
      out = "502 5.5.2 Error: command not recognized";
    }
    if (!co_await s->write(out + "\r\n")) co_return;
    if (start_tls) {
      s->in.clear();
      s->tls = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(s->socket, *tls);
      auto [ec] =
          co_await s->tls->async_handshake(asio::ssl::stream_base::server, as_tuple(use_awaitable));
      if (ec) co_return;
      rec().tls = true;
    }
  }
  // Hung: silent from now on, until the client gives up.
  while (co_await s->readLine(&line, &waiting)) rec().commands.push_back(line);
}

const TestCertificate& testCertificate() {
  static const TestCertificate cert = [] {
    TestCertificate out;
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
    for (auto [nid, value] :
         {std::pair{NID_subject_alt_name, "DNS:localhost,DNS:mx.example.test,IP:127.0.0.1"},
          std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(x, key, EVP_sha256());
    auto pem = [](auto write) {
      BIO* bio = BIO_new(BIO_s_mem());
      write(bio);
      char* data = nullptr;
      long n = BIO_get_mem_data(bio, &data);
      std::string s(data, static_cast<size_t>(n));
      BIO_free(bio);
      return s;
    };
    out.cert_pem = pem([&](BIO* b) { PEM_write_bio_X509(b, x); });
    out.key_pem = pem(
        [&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
    X509_free(x);
    EVP_PKEY_free(key);
    return out;
  }();
  return cert;
}

std::shared_ptr<asio::ssl::context> serverTlsContext() {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  const TestCertificate& c = testCertificate();
  ctx->use_certificate_chain(asio::buffer(c.cert_pem));
  ctx->use_private_key(asio::buffer(c.key_pem), asio::ssl::context::pem);
  return ctx;
}

}  // namespace mxgate::smtp_client::testing
