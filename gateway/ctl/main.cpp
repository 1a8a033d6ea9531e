// mxgatectl: the admin command line for mxgate.
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>

#include <fmt/format.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "filters/abuse/abuse_filter.h"
#include "filters/dkim/dkim_keys.h"
#include "gateway/config/config_error.h"
#include "gateway/config/runtime.h"
#include "gateway/config/table_reader.h"
#include "gateway/ctl/user_command.h"
#include "gateway/daemon/control.h"
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
        Messages in the queue: id, age, size, policy action, attempts so
        far, next attempt, recipients delivered/total, status (queued,
        deferred, held, quarantine, failed, partly failed, done), sender
        and recipients. Finished
        messages whose spool segment is not yet reclaimed are left out
        unless --all is given.
    queue show ID [--raw]
        One message: its envelope and verdict, each recipient's delivery
        state, then the message as spooled. --raw writes only the bytes.
    queue flush [ID | --domain DOMAIN]
        Try deferred mail now: all of it, one message, or one domain's.
    queue retry-reset [DOMAIN]
        Forget back-off: attempts counters restart (the retry schedule
        starts over), unreachable destinations are tried again, now.
    queue hold ID | --domain DOMAIN
        Keep a message, or all mail for a domain (the backup MX practice
        while the primary is down), until released. Survives restarts.
    queue release ID | --domain DOMAIN
        Lift a hold; releasing a quarantined message delivers it.
    queue holds
        Domains on hold.
    queue delete ID
        Drop a message without delivering it and without a bounce.
    The commands that change the queue talk to the running daemon through
    <state_dir>/control.sock.
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
    dkim keygen --domain D --selector S [--type rsa|ed25519] [--bits N] [--out DIR]
        Make a DKIM signing key: writes the private key to DIR/D.S.pem
        (PEM, mode 0640; DIR defaults to the current folder; an existing
        file is never overwritten) and prints the TXT record to publish.
        RSA keys have 2048 bits unless --bits says otherwise (1024-8192).
        Works without a configuration file.
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

// One message's delivery state in the columns of `queue list`.
struct DeliverySummary {
  bool finished = false;
  uint32_t attempts = 0;  // the most any recipient had
  int64_t next = 0;       // earliest next attempt of a deferred recipient
  size_t delivered = 0, total = 0;
  std::string status;
};

DeliverySummary summarize(const std::vector<mxgate::RecipientDelivery>& st, size_t rcpts,
                          const std::string& action, const std::string& flags) {
  DeliverySummary out;
  out.total = st.empty() ? rcpts : st.size();
  size_t failed = 0, deferred = 0;
  for (const auto& r : st) {
    out.attempts = std::max(out.attempts, r.attempts);
    if (r.status == "delivered") ++out.delivered;
    if (r.status == "failed") ++failed;
    if (r.status == "deferred") {
      ++deferred;
      out.next = out.next == 0 ? r.next_attempt_unix : std::min(out.next, r.next_attempt_unix);
    }
  }
  out.finished = !st.empty() && out.delivered + failed == st.size();
  if (out.finished)
    out.status = failed ? (out.delivered ? "partly failed" : "failed") : "done";
  else if (flags.find('h') != std::string::npos)
    out.status = "held";
  else if (action == "quarantine" && flags.find('r') == std::string::npos)
    out.status = "quarantine";
  else if (deferred)
    out.status = "deferred";
  else
    out.status = "queued";
  return out;
}

std::string inWhen(int64_t unix_s) {
  if (unix_s == 0) return "-";
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  int64_t d = unix_s - now;
  if (d <= 0) return "now";
  if (d < 120) return fmt::format("{}s", d);
  if (d < 7200) return fmt::format("{}m", d / 60);
  if (d < 172800) return fmt::format("{}h", d / 3600);
  return fmt::format("{}d", d / 86400);
}

int queueControl(const mxgate::Config& cfg, const std::vector<std::string>& args) {
  const std::string& sub = args[0];
  std::string request;
  auto domainOr = [&](const char* verb, const char* domain_verb) -> bool {
    if (args.size() == 3 && args[1] == "--domain") {
      request = std::string(domain_verb) + " " + args[2];
      return true;
    }
    if (args.size() == 2 && args[1].rfind("--", 0) != 0) {
      request = std::string(verb) + " " + args[1];
      return true;
    }
    return false;
  };
  if (sub == "flush") {
    if (args.size() == 1)
      request = "flush";
    else if (args.size() == 3 && args[1] == "--domain")
      request = "flush-domain " + mxgate::toLower(args[2]);
    else if (args.size() == 2)
      request = "flush " + args[1];
    else
      return usageError("usage: queue flush [ID | --domain DOMAIN]");
  } else if (sub == "retry-reset") {
    if (args.size() > 2) return usageError("usage: queue retry-reset [DOMAIN]");
    request = args.size() == 2 ? "retry-reset " + mxgate::toLower(args[1]) : "retry-reset";
  } else if (sub == "hold") {
    if (!domainOr("hold", "hold-domain")) return usageError("usage: queue hold ID | --domain D");
  } else if (sub == "release") {
    if (!domainOr("release", "release-domain"))
      return usageError("usage: queue release ID | --domain D");
  } else if (sub == "delete") {
    if (args.size() != 2) return usageError("usage: queue delete ID");
    request = "delete " + args[1];
  } else if (sub == "holds") {
    request = "holds";
  } else {
    return usageError("unknown queue command '" + sub + "'");
  }
  std::string reply = mxgate::controlRequest(cfg.state_dir + "/control.sock", "queue " + request);
  bool ok = reply.rfind("ok", 0) == 0;
  std::string text = reply.substr(std::min(reply.size(), ok ? size_t{3} : size_t{6}));
  (ok ? std::cout : std::cerr) << (ok ? "" : "mxgatectl: ") << text << "\n";
  return ok ? 0 : 1;
}

int queueList(const mxgate::Config& cfg, bool all) {
  auto store = mxgate::openLmdbStore(cfg.state_dir + "/store", cfg.store_map_size);
  int count = 0, finished = 0;
  uint64_t bytes = 0;
  const char* kRow = "{:<16}  {:>5}  {:>9}  {:<11}  {:>3}  {:>5}  {:>5}  {:<13}  {:<30}  {}\n";
  std::cout << fmt::format(fmt::runtime(kRow), "ID", "AGE", "SIZE", "ACTION", "TRY", "NEXT",
                           "RCPTS", "STATUS", "FROM", "RECIPIENTS");
  forEachRecord(cfg, [&](const mxgate::SpoolRecordView& r) {
    auto state = mxgate::QueueManager::loadDelivery(*store, r.meta.queue_id);
    auto flags = mxgate::QueueManager::loadFlags(*store, r.meta.queue_id);
    DeliverySummary sum = summarize(state, r.meta.envelope.rcpts.size(), r.meta.action, flags);
    if (sum.finished) {
      ++finished;
      if (!all) return true;
    }
    std::string rcpts;
    for (const auto& rc : r.meta.envelope.rcpts) rcpts += (rcpts.empty() ? "" : ",") + rc.address;
    std::cout << fmt::format(fmt::runtime(kRow), r.meta.queue_id, age(r.meta.received_ms),
                             r.body.size(), r.meta.action, sum.attempts, inWhen(sum.next),
                             fmt::format("{}/{}", sum.delivered, sum.total), sum.status,
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

// Writes the private key with mode 0640 (whatever the umask), never over an
// existing file, then prints the record to publish.
int dkimKeygen(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "keygen") return usageError("dkim needs keygen");
  std::string domain, selector, type = "rsa", out = ".";
  unsigned bits = 2048;
  // Every option takes a value: they come in pairs.
  for (size_t i = 1; i < args.size(); i += 2) {
    if (i + 1 >= args.size()) return usageError("missing value for " + args[i]);
    const std::string& v = args[i + 1];
    if (args[i] == "--domain")
      domain = mxgate::toLower(v);
    else if (args[i] == "--selector")
      selector = v;
    else if (args[i] == "--type")
      type = v;
    else if (args[i] == "--bits")
      bits = unsigned(std::strtoul(v.c_str(), nullptr, 10));
    else if (args[i] == "--out")
      out = v;
    else
      return usageError("unexpected argument '" + args[i] + "'");
  }
  if (domain.empty() || selector.empty())
    return usageError("dkim keygen needs --domain and --selector");
  if (domain.find('/') != std::string::npos || selector.find('/') != std::string::npos)
    return usageError("domain and selector cannot contain '/'");
  if (type != "rsa" && type != "ed25519") return usageError("--type is rsa or ed25519");
  auto kt = type == "rsa" ? mxgate::dkim::KeyType::kRsa : mxgate::dkim::KeyType::kEd25519;
  mxgate::dkim::KeyPair pair = mxgate::dkim::generateKeyPair(kt, bits);
  const std::string path = out + "/" + domain + "." + selector + ".pem";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    std::cerr << "mxgatectl: cannot create " << path << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  bool ok = ::fchmod(fd, 0640) == 0 &&
            ::write(fd, pair.private_pem.data(), pair.private_pem.size()) ==
                ssize_t(pair.private_pem.size()) &&
            ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    std::cerr << "mxgatectl: cannot write " << path << ": " << std::strerror(errno) << "\n";
    ::unlink(path.c_str());
    return 1;
  }
  std::cerr << "wrote " << path << "; publish this record:\n";
  std::cout << mxgate::dkim::zoneLine(domain, selector, pair.record) << "\n";
  return 0;
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
    if (cmd == "dkim") return dkimKeygen(args);
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
      return queueControl(cfg, args);
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
