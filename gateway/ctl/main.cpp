// mxgatectl: the admin command line for mxgate.
#include <getopt.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>

#include <fmt/format.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "filters/abuse/abuse_filter.h"
#include "gateway/config/config_error.h"
#include "gateway/config/runtime.h"
#include "gateway/config/table_reader.h"
#include "gateway/ctl/user_command.h"
#include "gateway/dns/make_resolver.h"
#include "gateway/queue/queue_manager.h"
#include "gateway/spool/spool_record.h"
#include "gateway/util/strings.h"
#include "gateway/version.h"
#include "store/kv_store.h"

namespace {

constexpr const char* kUsage = R"(NAME
    mxgatectl - administer an mxgate gateway

SYNOPSIS
    mxgatectl [-c FILE] COMMAND [ARGS...]

DESCRIPTION
    Reads the same configuration file as the daemon to find its spool and
    state store, and works on them directly; it is safe to use while the
    daemon runs.

OPTIONS
    -c, --config FILE   configuration file (default /etc/mxgate/mxgate.toml)
    -h, --help          this help; `mxgatectl help COMMAND` for one command
    -V, --version       print the version

COMMANDS
    check-config
        Validate the configuration; print FILE: ok, or FILE:LINE: message.
    symbols
        Every symbol the enabled filters can add, with its weight (after
        [symbols] overrides), filter and description.
    queue list [--all]
        Messages in the queue: id, age, size, policy action, delivery state
        (recipients delivered, failed, deferred and the next attempt),
        sender and recipients. Finished messages whose spool segment is not
        yet reclaimed are left out unless --all is given.
    queue show ID [--raw]
        One message: its envelope and verdict, then the message as spooled.
        --raw writes only the stored message bytes.
    blocks list
        Clients blocked by abuse detection, with reason and expiry.
    blocks add IP [--for DURATION] [--reason TEXT]
        Block a client (default 1h).
    blocks remove IP
        Lift a block at once.
    dns NAME [TYPE]
        Look NAME up (A by default; AAAA, MX, TXT, PTR, CNAME) the way the
        daemon does, through [dns]: its servers or its static zone file.
        Exit status 1 when the answer is not a record set.
    user add NAME [--password-stdin] [--file FILE]
        Add a submission user (SMTP AUTH) to submission.users_file, or to
        FILE. The password is typed twice on the terminal, without echo;
        --password-stdin reads one line from standard input instead (for
        scripts). Passwords under 12 characters are refused. It is stored
        as an argon2id hash; the file is replaced atomically with mode
        0640 (a new one, made by root, gets server.user's group). Send the
        daemon SIGHUP to apply.
    user passwd NAME [--password-stdin] [--file FILE]
        Set a new password for NAME, the same way.
    user del NAME [--file FILE]
        Remove NAME.
    user list [--file FILE]
        Every user with the scheme of its hash (argon2id or yescrypt).

EXIT STATUS
    0 success, 1 an error (bad configuration, unknown id, ...), 2 bad usage.
)";

int usageError(const std::string& msg) {
  std::cerr << "mxgatectl: " << msg << "\nTry 'mxgatectl --help'.\n";
  return 2;
}

std::string age(int64_t ms) {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  int64_t s = std::max<int64_t>(0, (now - ms) / 1000);
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  if (s < 172800) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string utc(int64_t unix_s) {
  std::time_t t = unix_s;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

template <typename Fn>
void forEachRecord(const mxgate::Config& cfg, Fn fn) {
  for (const auto& [n, path] : mxgate::listSegments(cfg.spool_dir + "/segments")) {
    bool go = true;
    auto rep = mxgate::readSegment(path, n, [&](const mxgate::SpoolRecordView& r) {
      go = fn(r);
      return go;
    });
    if (!rep.problem.empty())
      std::cerr << "mxgatectl: note: " << path << ": " << rep.problem << " after " << rep.records
                << " records (an unacknowledged partial write)\n";
    if (!go) return;
  }
}

// "2/3 delivered, 1 deferred (next in 14m)" from the queue's stored state.
struct DeliverySummary {
  bool finished = false;
  std::string text;
};

DeliverySummary summarize(const std::vector<mxgate::RecipientDelivery>& st, size_t rcpts,
                          const std::string& action) {
  if (action == "quarantine") return {false, "held"};
  if (st.empty()) return {false, fmt::format("0/{} queued", rcpts)};
  size_t delivered = 0, failed = 0, deferred = 0;
  int64_t next = 0;
  for (const auto& r : st) {
    if (r.status == "delivered") ++delivered;
    if (r.status == "failed") ++failed;
    if (r.status == "deferred") {
      ++deferred;
      next = next == 0 ? r.next_attempt_unix : std::min(next, r.next_attempt_unix);
    }
  }
  DeliverySummary out;
  out.finished = delivered + failed == st.size();
  out.text = fmt::format("{}/{} delivered", delivered, st.size());
  if (failed) out.text += fmt::format(", {} failed", failed);
  if (deferred) out.text += fmt::format(", {} deferred until {}", deferred, utc(next));
  return out;
}

int queueList(const mxgate::Config& cfg, bool all) {
  auto store = mxgate::openLmdbStore(cfg.state_dir + "/store", cfg.store_map_size);
  int count = 0, finished = 0;
  uint64_t bytes = 0;
  std::cout << fmt::format("{:<16}  {:>5}  {:>9}  {:<10}  {:<28}  {:<30}  {}\n", "ID", "AGE",
                           "SIZE", "ACTION", "DELIVERY", "FROM", "RECIPIENTS");
  forEachRecord(cfg, [&](const mxgate::SpoolRecordView& r) {
    auto state = mxgate::QueueManager::loadDelivery(*store, r.meta.queue_id);
    DeliverySummary sum = summarize(state, r.meta.envelope.rcpts.size(), r.meta.action);
    if (sum.finished) {
      ++finished;
      if (!all) return true;
    }
    std::string rcpts;
    for (const auto& rc : r.meta.envelope.rcpts) rcpts += (rcpts.empty() ? "" : ",") + rc.address;
    std::cout << fmt::format("{:<16}  {:>5}  {:>9}  {:<10}  {:<28}  {:<30}  {}\n", r.meta.queue_id,
                             age(r.meta.received_ms), r.body.size(), r.meta.action, sum.text,
                             "<" + r.meta.envelope.mail_from + ">", rcpts);
    ++count;
    bytes += r.body.size();
    return true;
  });
  std::cout << fmt::format("-- {} message(s), {} bytes", count, bytes);
  if (!all && finished)
    std::cout << fmt::format(" ({} finished, not shown; --all shows them)", finished);
  std::cout << "\n";
  return 0;
}

int queueShow(const mxgate::Config& cfg, const std::string& id, bool raw) {
  bool found = false;
  std::vector<mxgate::RecipientDelivery> delivery;
  if (!raw) {
    auto store = mxgate::openLmdbStore(cfg.state_dir + "/store", cfg.store_map_size);
    delivery = mxgate::QueueManager::loadDelivery(*store, id);
  }
  forEachRecord(cfg, [&](const mxgate::SpoolRecordView& r) {
    if (r.meta.queue_id != id) return true;
    found = true;
    if (raw) {
      std::fwrite(r.body.data(), 1, r.body.size(), stdout);
      return false;
    }
    const auto& m = r.meta;
    std::cout << "id:        " << m.queue_id << "\n"
              << "received:  " << utc(m.received_ms / 1000) << " (" << age(m.received_ms)
              << " ago)\n"
              << "client:    " << m.client_name << "[" << m.client_ip << "] helo=" << m.helo << " "
              << m.protocol << "\n"
              << "from:      <" << m.envelope.mail_from << ">";
    if (m.envelope.declared_size) std::cout << " SIZE=" << m.envelope.declared_size;
    if (!m.envelope.body.empty()) std::cout << " BODY=" << m.envelope.body;
    if (m.envelope.smtputf8) std::cout << " SMTPUTF8";
    if (!m.envelope.ret.empty()) std::cout << " RET=" << m.envelope.ret;
    if (!m.envelope.envid.empty()) std::cout << " ENVID=" << m.envelope.envid;
    std::cout << "\n";
    for (size_t i = 0; i < m.envelope.rcpts.size(); ++i) {
      const auto& rc = m.envelope.rcpts[i];
      std::cout << "to:        <" << rc.address << ">";
      if (!rc.notify.empty()) std::cout << " NOTIFY=" << rc.notify;
      if (!rc.orcpt.empty()) std::cout << " ORCPT=" << rc.orcpt;
      if (i < delivery.size()) {
        const auto& d = delivery[i];
        std::cout << "  " << d.status << ", " << d.attempts << " attempt(s)";
        if (d.status == "deferred") std::cout << ", next " << utc(d.next_attempt_unix);
        if (!d.last_reply.empty()) std::cout << ": " << d.last_reply;
      } else {
        std::cout << (m.action == "quarantine" ? "  held" : "  queued");
      }
      std::cout << "\n";
    }
    std::cout << fmt::format("verdict:   action={} score={:.2f}\n", m.action, m.score)
              << "symbols:   " << (m.symbols.empty() ? "none" : m.symbols) << "\n"
              << "location:  segment " << r.segment << " offset " << r.offset << ", "
              << r.body.size() << " bytes\n\n";
    std::fwrite(r.body.data(), 1, r.body.size(), stdout);
    return false;
  });
  if (!found) {
    std::cerr << "mxgatectl: no message " << id << " in the spool\n";
    return 1;
  }
  return 0;
}

int blocks(const mxgate::Config& cfg, std::vector<std::string> args) {
  if (args.empty()) return usageError("blocks needs list, add or remove");
  auto store = mxgate::openLmdbStore(cfg.state_dir + "/store", cfg.store_map_size);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  if (args[0] == "list") {
    auto list = mxgate::listBlocks(*store, now);
    std::cout << fmt::format("{:<40}  {:<20}  {}\n", "CLIENT", "UNTIL", "REASON");
    for (const auto& b : list)
      std::cout << fmt::format("{:<40}  {:<20}  {}\n", b.ip, utc(b.until_unix), b.reason);
    std::cout << "-- " << list.size() << " block(s)\n";
    return 0;
  }
  if (args.size() < 2) return usageError("blocks " + args[0] + " needs an IP address");
  if (args[0] == "remove") {
    if (!mxgate::removeBlock(*store, args[1])) {
      std::cerr << "mxgatectl: " << args[1] << " is not blocked\n";
      return 1;
    }
    std::cout << "unblocked " << args[1] << "\n";
    return 0;
  }
  if (args[0] == "add") {
    std::chrono::milliseconds dur = std::chrono::hours(1);
    std::string reason = "added by an administrator";
    for (size_t i = 2; i < args.size(); ++i) {
      if (args[i] == "--for" && i + 1 < args.size()) {
        auto d = mxgate::parseDuration(args[++i]);
        if (!d || d->count() <= 0) return usageError("--for takes a duration such as 30m or 2h");
        dur = *d;
      } else if (args[i] == "--reason" && i + 1 < args.size()) {
        reason = args[++i];
      } else {
        return usageError("unexpected argument '" + args[i] + "'");
      }
    }
    mxgate::AbuseBlock b{
        args[1], now + std::chrono::duration_cast<std::chrono::seconds>(dur).count(), reason, now};
    try {
      mxgate::addBlock(*store, b);
    } catch (const std::invalid_argument& e) {
      std::cerr << "mxgatectl: " << e.what() << "\n";
      return 1;
    }
    std::cout << "blocked " << args[1] << " until " << utc(b.until_unix) << "\n";
    return 0;
  }
  return usageError("unknown blocks command '" + args[0] + "'");
}

// Looks a name up through the daemon's resolver settings ([dns]), so an
// admin sees what the filters will see.
int dnsLookup(const mxgate::Config& cfg, const std::vector<std::string>& args) {
  if (args.empty() || args.size() > 2)
    return usageError("dns takes NAME [A|AAAA|MX|TXT|PTR|CNAME]");
  mxgate::RecordType type = mxgate::RecordType::kA;
  if (args.size() == 2) {
    bool found = false;
    for (auto t :
         {mxgate::RecordType::kA, mxgate::RecordType::kAaaa, mxgate::RecordType::kMx,
          mxgate::RecordType::kTxt, mxgate::RecordType::kPtr, mxgate::RecordType::kCname}) {
      if (mxgate::iequals(args[1], mxgate::recordTypeName(t))) {
        type = t;
        found = true;
      }
    }
    if (!found) return usageError("unknown record type '" + args[1] + "'");
  }
  mxgate::DnsAnswer answer;
  {
    asio::io_context io;
    auto resolver = mxgate::makeResolver(cfg.dns);
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { answer = co_await resolver->lookup(args[0], type); },
        asio::detached);
    io.run();
  }
  std::cout << args[0] << " " << mxgate::recordTypeName(type) << ": "
            << mxgate::dnsStatusName(answer.status);
  if (answer.ok()) std::cout << " (ttl " << answer.ttl << ")";
  std::cout << "\n";
  for (const std::string& r : answer.records) std::cout << "  " << r << "\n";
  return answer.ok() ? 0 : 1;
}

int symbols(const std::string& file) {
  auto rt = mxgate::loadRuntime(file);
  std::map<std::string, const mxgate::SymbolInfo*> sorted;
  for (const auto& [name, info] : rt->symbols.all()) sorted[name] = &info;
  std::cout << fmt::format("{:<28}  {:>8}  {:<10}  {}\n", "SYMBOL", "WEIGHT", "FILTER",
                           "DESCRIPTION");
  for (const auto& [name, info] : sorted)
    std::cout << fmt::format("{:<28}  {:>8.2f}  {:<10}  {}\n", name, info->weight, info->filter,
                             info->description);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_file = "/etc/mxgate/mxgate.toml";
  static const option kOptions[] = {{"config", required_argument, nullptr, 'c'},
                                    {"help", no_argument, nullptr, 'h'},
                                    {"version", no_argument, nullptr, 'V'},
                                    {nullptr, 0, nullptr, 0}};
  int opt;
  // "+": stop at the first non-option so subcommand flags reach the subcommand.
  while ((opt = getopt_long(argc, argv, "+c:hV", kOptions, nullptr)) != -1) {
    switch (opt) {
      case 'c':
        config_file = optarg;
        break;
      case 'h':
        std::cout << kUsage;
        return 0;
      case 'V':
        std::cout << "mxgatectl " << MXGATE_VERSION << "\n";
        return 0;
      default:
        return usageError("bad option");
    }
  }
  std::vector<std::string> args(argv + optind, argv + argc);
  if (args.empty()) return usageError("no command given");
  const std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  try {
    if (cmd == "check-config") {
      mxgate::loadRuntime(config_file);
      std::cout << config_file << ": ok\n";
      return 0;
    }
    if (cmd == "symbols") return symbols(config_file);
    if (cmd == "user") return mxgate::userCommand(config_file, args);
    mxgate::Config cfg = mxgate::loadConfig(config_file);
    if (cmd == "queue") {
      if (args.empty()) return usageError("queue needs list or show");
      if (args[0] == "list") {
        bool all = args.size() > 1 && args[1] == "--all";
        if (args.size() > 1 && !all) return usageError("unexpected argument '" + args[1] + "'");
        return queueList(cfg, all);
      }
      if (args[0] == "show") {
        if (args.size() < 2) return usageError("queue show needs a queue id");
        bool raw = args.size() > 2 && args[2] == "--raw";
        if (args.size() > 2 && !raw) return usageError("unexpected argument '" + args[2] + "'");
        return queueShow(cfg, args[1], raw);
      }
      return usageError("unknown queue command '" + args[0] + "'");
    }
    if (cmd == "blocks") return blocks(cfg, args);
    if (cmd == "dns") return dnsLookup(cfg, args);
    return usageError("unknown command '" + cmd + "'");
  } catch (const mxgate::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "mxgatectl: " << e.what() << "\n";
    return 1;
  }
}
