#include "gateway/dns/cares_backend.h"

#include <ares.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace mxgate {

namespace {

constexpr int kClassIn = 1;
constexpr int kTypeSoa = 6;

uint16_t get16(const unsigned char* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t get32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}

// Expands the (possibly compressed) name at p; returns its encoded length, or -1.
long expandName(const unsigned char* p, const unsigned char* buf, int len, std::string* out) {
  char* s = nullptr;
  long enclen = 0;
  if (ares_expand_name(p, buf, len, &s, &enclen) != ARES_SUCCESS) return -1;
  if (out) *out = s;
  ares_free_string(s);
  return enclen;
}

DnsAnswer withStatus(DnsStatus s) {
  DnsAnswer a;
  a.status = s;
  return a;
}

}  // namespace

DnsAnswer parseDnsResponse(const unsigned char* buf, int len, RecordType type) {
  if (len < 12) return withStatus(DnsStatus::kError);
  const unsigned char* end = buf + len;
  int rcode = get16(buf + 2) & 0xF;
  int qd = get16(buf + 4), an = get16(buf + 6), ns = get16(buf + 8);
  const unsigned char* p = buf + 12;
  for (int i = 0; i < qd; ++i) {
    long n = expandName(p, buf, len, nullptr);
    if (n < 0 || p + n + 4 > end) return withStatus(DnsStatus::kError);
    p += n + 4;
  }
  DnsAnswer a;
  bool have_ttl = false;
  for (int i = 0; i < an; ++i) {
    long n = expandName(p, buf, len, nullptr);
    if (n < 0 || p + n + 10 > end) return withStatus(DnsStatus::kError);
    p += n;
    int rtype = get16(p), rclass = get16(p + 2);
    uint32_t ttl = get32(p + 4);
    int rdlen = get16(p + 8);
    p += 10;
    const unsigned char* rd = p;
    if (rd + rdlen > end) return withStatus(DnsStatus::kError);
    p += rdlen;
    if (rclass != kClassIn || rtype != static_cast<int>(type)) continue;  // e.g. CNAME chain
    std::string text;
    switch (type) {
      case RecordType::kA:
      case RecordType::kAaaa: {
        bool v6 = type == RecordType::kAaaa;
        if (rdlen != (v6 ? 16 : 4)) return withStatus(DnsStatus::kError);
        char s[INET6_ADDRSTRLEN];
        inet_ntop(v6 ? AF_INET6 : AF_INET, rd, s, sizeof s);
        text = s;
        break;
      }
      case RecordType::kMx: {
        std::string host;
        if (rdlen < 3 || expandName(rd + 2, buf, len, &host) < 0) {
          return withStatus(DnsStatus::kError);
        }
        text = std::to_string(get16(rd)) + " " + host;
        break;
      }
      case RecordType::kPtr:
      case RecordType::kCname:
        if (expandName(rd, buf, len, &text) < 0) return withStatus(DnsStatus::kError);
        break;
      case RecordType::kTxt: {
        std::vector<std::string> strings;
        const unsigned char* q = rd;
        while (q < rd + rdlen) {
          size_t l = *q++;
          if (q + l > rd + rdlen) return withStatus(DnsStatus::kError);
          strings.emplace_back(reinterpret_cast<const char*>(q), l);
          text += strings.back();
          q += l;
        }
        a.txt.push_back(std::move(strings));
        break;
      }
    }
    a.records.push_back(std::move(text));
    a.ttl = have_ttl ? std::min(a.ttl, ttl) : ttl;
    have_ttl = true;
  }
  if (rcode == 0 && !a.records.empty()) {
    a.status = DnsStatus::kOk;
    return a;
  }
  if (rcode == 2 || rcode == 5) return withStatus(DnsStatus::kServFail);
  if (rcode != 0 && rcode != 3) return withStatus(DnsStatus::kError);
  a = withStatus(rcode == 3 ? DnsStatus::kNxDomain : DnsStatus::kNoData);
  // RFC 2308 section 5: the negative TTL is min(SOA TTL, SOA MINIMUM).
  for (int i = 0; i < ns; ++i) {
    long n = expandName(p, buf, len, nullptr);
    if (n < 0 || p + n + 10 > end) break;
    p += n;
    int rtype = get16(p);
    uint32_t ttl = get32(p + 4);
    int rdlen = get16(p + 8);
    p += 10;
    const unsigned char* rd = p;
    if (rd + rdlen > end) break;
    p += rdlen;
    if (rtype != kTypeSoa) continue;
    long m1 = expandName(rd, buf, len, nullptr);
    if (m1 < 0) break;
    long m2 = expandName(rd + m1, buf, len, nullptr);
    if (m2 < 0 || m1 + m2 + 20 > rdlen) break;
    uint32_t minimum = get32(rd + m1 + m2 + 16);
    a.ttl = std::min(ttl, minimum);
    break;
  }
  return a;
}

struct CaresBackend::Pending {
  std::string name;
  RecordType type;
  Callback done;
};

CaresBackend::CaresBackend(CaresOptions options) : options_(std::move(options)) {
  static std::once_flag init_once;
  static int init_status = ARES_SUCCESS;
  std::call_once(init_once, [] { init_status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (init_status != ARES_SUCCESS) {
    throw std::runtime_error(std::string("ares_library_init: ") + ares_strerror(init_status));
  }

  ares_options opts{};
  opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  opts.timeout = static_cast<int>(options_.timeout.count());  // ms with ARES_OPT_TIMEOUTMS
  opts.tries = options_.tries;
  int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  ares_channel ch = nullptr;
  int rc = ares_init_options(&ch, &opts, mask);
  if (rc != ARES_SUCCESS) throw std::runtime_error(std::string("ares_init: ") + ares_strerror(rc));
  if (!options_.servers.empty()) {
    rc = ares_set_servers_ports_csv(ch, options_.servers.c_str());
    if (rc != ARES_SUCCESS) {
      ares_destroy(ch);
      throw std::runtime_error("bad DNS servers '" + options_.servers + "': " + ares_strerror(rc));
    }
  }
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    ares_destroy(ch);
    throw std::runtime_error("eventfd failed");
  }
  channel_ = ch;
  thread_ = std::thread([this] { loop(); });
}

CaresBackend::~CaresBackend() {
  stop_ = true;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
  thread_.join();
  // Answers everything still in c-ares with ARES_EDESTRUCTION.
  ares_destroy(static_cast<ares_channel>(channel_));
  std::deque<std::unique_ptr<Pending>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(queue_);
  }
  for (auto& p : left) p->done(withStatus(DnsStatus::kError));
  close(wake_fd_);
}

void CaresBackend::query(const std::string& name, RecordType type, Callback done) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::make_unique<Pending>(Pending{name, type, std::move(done)}));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void CaresBackend::loop() {
  auto ch = static_cast<ares_channel>(channel_);
  auto callback = [](void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
    std::unique_ptr<Pending> p(static_cast<Pending*>(arg));
    DnsAnswer a;
    if (status == ARES_ETIMEOUT) {
      a = withStatus(DnsStatus::kTimeout);
    } else if (abuf != nullptr && alen > 0 && status != ARES_EDESTRUCTION &&
               status != ARES_ECANCELLED) {
      a = parseDnsResponse(abuf, alen, p->type);
    } else if (status == ARES_ENOTFOUND) {
      a = withStatus(DnsStatus::kNxDomain);
    } else if (status == ARES_ENODATA) {
      a = withStatus(DnsStatus::kNoData);
    } else if (status == ARES_ESERVFAIL || status == ARES_EREFUSED) {
      a = withStatus(DnsStatus::kServFail);
    } else {
      a = withStatus(DnsStatus::kError);
    }
    p->done(std::move(a));
  };

  std::vector<pollfd> fds;
  while (!stop_) {
    std::deque<std::unique_ptr<Pending>> start;
    {
      std::lock_guard lock(mu_);
      start.swap(queue_);
    }
    for (auto& p : start) {
      Pending* raw = p.release();
      ares_query(ch, raw->name.c_str(), kClassIn, static_cast<int>(raw->type), callback, raw);
    }

    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short ev = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
      if (ev == 0) continue;
      fds.push_back({socks[i], ev, 0});
    }
    timeval max{1, 0}, tv{};
    timeval* t = ares_timeout(ch, &max, &tv);
    int ms = static_cast<int>(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
    int r = poll(fds.data(), fds.size(), ms);
    if (r < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &v, sizeof v);
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      short re = fds[i].revents;
      if (re == 0) continue;
      ares_socket_t rd = (re & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
      ares_socket_t wr = (re & (POLLOUT | POLLERR)) ? fds[i].fd : ARES_SOCKET_BAD;
      ares_process_fd(ch, rd, wr);
    }
    // Timeouts and retries.
    ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  }
}

}  // namespace mxgate
