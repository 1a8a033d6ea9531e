// mxgate: the SMTP filtering gateway daemon.
#include <getopt.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <asio/signal_set.hpp>
#include <asio/ssl/context.hpp>

#include "gateway/auth/users_file.h"
#include "gateway/config/config_error.h"
#include "gateway/config/runtime.h"
#include "gateway/daemon/control.h"
#include "gateway/daemon/privileges.h"
#include "gateway/dns/make_resolver.h"
#include "gateway/queue/bounce_sender.h"
#include "gateway/queue/maildir_agent.h"
#include "gateway/queue/queue_manager.h"
#include "gateway/queue/router.h"
#include "gateway/queue/smtp_transport.h"
#include "gateway/smtp/server.h"
#include "gateway/util/worker_pool.h"
#include "gateway/version.h"
#include "store/kv_store.h"

namespace {

constexpr const char* kUsage = R"(NAME
    mxgate - SMTP filtering gateway

SYNOPSIS
    mxgate [-c FILE] [--check-config] [--log-level LEVEL]
    mxgate --help | --version

DESCRIPTION
    mxgate sits in the MX path ahead of other mail servers. It accepts mail
    over SMTP, runs every configured check before answering DATA (so spam and
    policy violations are refused in the session, never bounced later), and
    acknowledges a message with 250 only after it is written and synced to the
    spool.

    It runs in the foreground and logs to standard error (or server.log_file);
    use the systemd unit in etc/mxgate.service to run it as a service. When
    started as root it binds its ports, hands its state and spool directories
    to server.user, and drops privileges.

OPTIONS
    -c, --config FILE
        Configuration file (default: /etc/mxgate/mxgate.toml). Relative paths
        inside it are relative to the directory holding the file.
    --check-config
        Load and validate the configuration, print "FILE: ok" or the first
        error as FILE:LINE: message, and exit (status 0 or 1).
    --log-level LEVEL
        Override server.log_level: debug, info, warn or error.
    -h, --help
        Show this help.
    -V, --version
        Print the version.

SIGNALS
    SIGHUP      Reload the configuration, re-read the TLS certificate and
                key and the submission users file. A file that fails
                validation (or a certificate that cannot be loaded) is
                rejected with the reason in the log and the running
                configuration stays in force. Listen addresses (server
                and submission), threads, directories, [dns] and the user
                need a restart. After the privilege drop the certificate
                and the users file must be readable by server.user.
    SIGTERM, SIGINT
                Stop accepting, let open sessions finish for up to 10 seconds,
                and exit. Nothing acknowledged is lost either way.

EXIT STATUS
    0 on a clean stop or a valid configuration, 1 on a configuration error,
    2 on a start-up failure (port in use, unwritable spool, ...).

SEE ALSO
    mxgatectl(8), etc/mxgate.toml (every setting, with its default), README.md
)";

void setupLogging(const mxgate::Config& cfg, const std::string& level_override) {
  std::shared_ptr<spdlog::logger> logger;
  if (cfg.log_file.empty()) {
    logger = spdlog::stderr_logger_mt("mxgate");
  } else {
    logger = spdlog::basic_logger_mt("mxgate", cfg.log_file);
  }
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ mxgate[%P]: %l: %v", spdlog::pattern_time_type::utc);
  logger->set_level(
      spdlog::level::from_str(level_override.empty() ? cfg.log_level : level_override));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

std::shared_ptr<asio::ssl::context> loadTls(const mxgate::Config& cfg) {
  if (!cfg.tls.enabled) return nullptr;
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  asio::error_code ec;
  ctx->use_certificate_chain_file(cfg.tls.cert_file, ec);
  if (ec)
    throw std::runtime_error("tls.cert_file: cannot load " + cfg.tls.cert_file + ": " +
                             ec.message() +
                             " (generate one with tools/gen-cert.sh, or set tls.enabled = false)");
  ctx->use_private_key_file(cfg.tls.key_file, asio::ssl::context::pem, ec);
  if (ec)
    throw std::runtime_error("tls.key_file: cannot load " + cfg.tls.key_file + ": " + ec.message());
  return ctx;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_file = "/etc/mxgate/mxgate.toml";
  std::string level_override;
  bool check_only = false;
  static const option kOptions[] = {
      {"config", required_argument, nullptr, 'c'},    {"check-config", no_argument, nullptr, 'k'},
      {"log-level", required_argument, nullptr, 'l'}, {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},         {nullptr, 0, nullptr, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "c:hV", kOptions, nullptr)) != -1) {
    switch (opt) {
      case 'c':
        config_file = optarg;
        break;
      case 'k':
        check_only = true;
        break;
      case 'l':
        level_override = optarg;
        if (spdlog::level::from_str(level_override) == spdlog::level::off &&
            level_override != "off") {
          std::cerr << "mxgate: --log-level must be debug, info, warn or error\n";
          return 1;
        }
        break;
      case 'h':
        std::cout << kUsage;
        return 0;
      case 'V':
        std::cout << "mxgate " << MXGATE_VERSION << "\n";
        return 0;
      default:
        std::cerr << "Try 'mxgate --help'.\n";
        return 1;
    }
  }
  if (optind < argc) {
    std::cerr << "mxgate: unexpected argument '" << argv[optind] << "'\nTry 'mxgate --help'.\n";
    return 1;
  }

  if (check_only) {
    try {
      auto rt = mxgate::loadRuntime(config_file);
      if (!rt->config.dns.static_zones.empty())
        mxgate::makeResolver(rt->config.dns);  // parse the zone file
      std::cout << config_file << ": ok\n";
      return 0;
    } catch (const mxgate::ConfigError& e) {
      std::cerr << e.what() << "\n";
      return 1;
    }
  }

  mxgate::Config cfg;
  try {
    cfg = mxgate::loadConfig(config_file);
  } catch (const mxgate::ConfigError& e) {
    std::cerr << "mxgate: " << e.what() << "\n";
    return 1;
  }
  try {
    setupLogging(cfg, level_override);
  } catch (const std::exception& e) {
    std::cerr << "mxgate: cannot open log: " << e.what() << "\n";
    return 2;
  }

  try {
    mxgate::Services services;
    services.tls.store(loadTls(cfg));
    mxgate::smtp::Server server(services, cfg.threads);
    server.bind(cfg.listen);
    server.bind(cfg.submission.listen, mxgate::ListenerKind::kSubmission);
    for (const std::string& d : {cfg.state_dir, cfg.spool_dir, cfg.delivery.maildir_root})
      std::filesystem::create_directories(d);
    mxgate::dropPrivileges(cfg.user, {cfg.state_dir, cfg.spool_dir, cfg.delivery.maildir_root});
    for (const auto& [key, dir] : {std::pair{"server.state_dir", cfg.state_dir},
                                   {"server.spool_dir", cfg.spool_dir},
                                   {"delivery.maildir_root", cfg.delivery.maildir_root}}) {
      if (access(dir.c_str(), W_OK | X_OK) != 0)
        throw std::runtime_error(std::string(key) + ": " + dir +
                                 " is not writable by the daemon's user (" + std::strerror(errno) +
                                 "; check the permissions of its parent directories)");
    }

    auto store = mxgate::openLmdbStore(cfg.state_dir + "/store", cfg.store_map_size);
    services.store = store.get();
    // Declared after the server: it must go before the event loops it
    // posts answers into.
    std::unique_ptr<mxgate::Resolver> resolver;
    // Blocking library calls of filters; joined before the store goes.
    mxgate::WorkerPool workers(0);
    mxgate::FilterDeps deps;
    std::shared_ptr<const mxgate::Runtime> rt;
    try {
      resolver = mxgate::makeResolver(cfg.dns);
      deps.store = store.get();
      deps.resolver = resolver.get();
      deps.workers = &workers;
      services.workers = &workers;  // password checks of SMTP AUTH
      rt = mxgate::loadRuntime(config_file, deps);
    } catch (const mxgate::ConfigError& e) {
      spdlog::error("{}", e.what());
      return 1;
    }
    services.runtime.store(rt);
    mxgate::Spool spool(
        mxgate::Spool::Options{cfg.spool_dir + "/segments", cfg.spool_segment_size, nullptr});
    services.spool = &spool;

    // Delivery: [[route]]s first, then [[domains]] -> local Maildirs, then MX.
    mxgate::MaildirAgent local({cfg.delivery.maildir_root, cfg.delivery.quota, cfg.hostname});
    mxgate::QueueManager::Options qopt;
    qopt.segments_dir = spool.dir();
    qopt.store = store.get();
    qopt.local = &local;
    mxgate::SmtpTransport smtp({resolver.get(), cfg.hostname, {}, cfg.delivery.mx_port});
    qopt.route = mxgate::makeRouter(std::shared_ptr<const mxgate::Config>(rt, &rt->config),
                                    mxgate::Transports{&smtp, &smtp});
    qopt.on_stopped = [&smtp] { smtp.shutdown(); };
    mxgate::QueueManager* running_queue = nullptr;  // set once the queue runs
    qopt.on_failed = mxgate::makeBounceSender(cfg.delivery, cfg.hostname, spool, &running_queue);
    qopt.retry_schedule = cfg.delivery.retry_schedule;
    qopt.max_lifetime = cfg.delivery.max_lifetime;
    qopt.dns_error_limit = cfg.delivery.dns_error_limit;
    qopt.max_concurrency = cfg.delivery.max_concurrency;
    qopt.destination_concurrency = cfg.delivery.destination_concurrency;
    qopt.priority = cfg.delivery.priority;
    qopt.current_segment = [&spool] { return spool.currentSegment(); };
    mxgate::QueueManager queue(std::move(qopt));
    if (cfg.delivery.hold) {
      spdlog::warn(
          "delivery.hold is set: accepted mail stays in the spool until it is unset (restart)");
    } else {
      running_queue = &queue;
      queue.start();
      services.queue = &queue;
    }
    spdlog::info("spool {}: {} message(s) in {} segment(s){}", spool.dir(),
                 spool.recovery().records, spool.recovery().segments,
                 spool.recovery().torn_segments
                     ? " (some end in an unacknowledged partial write; see above)"
                     : "");

    std::unique_ptr<mxgate::ControlServer> control;
    try {
      control = std::make_unique<mxgate::ControlServer>(
          server.mainContext(), cfg.state_dir + "/control.sock", services.queue);
    } catch (const std::exception& e) {
      // The gateway works without it; only mxgatectl's queue commands do not.
      spdlog::error("control socket {}/control.sock: {}", cfg.state_dir, e.what());
    }

    asio::signal_set signals(server.mainContext(), SIGHUP, SIGTERM, SIGINT);
    std::function<void()> wait_signal = [&] {
      signals.async_wait([&](asio::error_code ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          try {
            auto next = mxgate::loadRuntime(config_file, deps);
            // Certificates are re-read too (renewals keep their paths).
            auto next_tls = loadTls(next->config);
            const auto& old_cfg = services.runtime.load()->config;
            if (next->config.listen != old_cfg.listen ||
                next->config.submission.listen != old_cfg.submission.listen ||
                next->config.threads != old_cfg.threads ||
                next->config.state_dir != old_cfg.state_dir ||
                next->config.spool_dir != old_cfg.spool_dir ||
                next->config.dns.servers != old_cfg.dns.servers ||
                next->config.dns.static_zones != old_cfg.dns.static_zones)
              spdlog::warn(
                  "reload: listen, threads, directories and [dns] keep their old values until "
                  "restart");
            services.runtime.store(next);
            services.tls.store(next_tls);
            spdlog::info("reload: {} loaded (TLS {})", config_file, next_tls ? "on" : "off");
          } catch (const mxgate::ConfigError& e) {
            spdlog::error("reload failed, keeping the running configuration: {}", e.what());
          } catch (const std::exception& e) {
            spdlog::error("reload failed, keeping the running configuration: {}", e.what());
          }
          wait_signal();
          return;
        }
        spdlog::info("signal {}: stopping", sig);
        server.stop(std::chrono::seconds(10));
      });
    };
    wait_signal();

    auto addrs = [](const std::vector<asio::ip::tcp::endpoint>& eps) {
      std::string out;
      for (const auto& ep : eps) {
        if (!out.empty()) out += ", ";
        out += (ep.address().is_v6() ? "[" + ep.address().to_string() + "]"
                                     : ep.address().to_string()) +
               ":" + std::to_string(ep.port());
      }
      return out;
    };
    std::string submission;
    if (!cfg.submission.listen.empty())
      submission = ", submission (AUTH, " + std::to_string(rt->users->size()) + " user(s)) on " +
                   addrs(cfg.submission.listen);
    spdlog::info("mxgate {} ready: listening on {}{}, {} thread(s), {} filter(s), TLS {}",
                 MXGATE_VERSION, addrs(cfg.listen), submission, server.threads(),
                 rt->pipeline.entries().size(), services.tls.load() ? "on" : "off");
    server.run();
    queue.stop();
    spdlog::info("stopped");
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    return 2;
  }
}
