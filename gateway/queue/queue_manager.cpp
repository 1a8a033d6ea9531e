#include "gateway/queue/queue_manager.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "gateway/smtp/command.h"
#include "gateway/util/strings.h"

namespace mxgate {

namespace {

int fsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

std::string oneLine(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c == '\t' || c == '\r' || c == '\n') c = ' ';
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep, size_t max_fields) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < max_fields) {
    size_t p = s.find(sep);
    if (p == std::string_view::npos) break;
    out.push_back(s.substr(0, p));
    s.remove_prefix(p + 1);
  }
  out.push_back(s);
  return out;
}

template <typename T>
bool parseNum(std::string_view s, T* out) {
  auto [p, e] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return e == std::errc() && p == s.data() + s.size();
}

constexpr std::string_view kHoldBucket = "queue_holds";
// "<queue id>/<recipient index>" of local deliveries, written by the pool
// thread right after the Maildir is durable, before the result travels back
// to the queue thread: a crash in between then re-delivers nothing.
constexpr std::string_view kDoneBucket = "queue_done";

std::string doneKey(const std::string& id, size_t rcpt) {
  return id + "/" + std::to_string(rcpt);
}

std::string domainPart(const std::string& address) {
  return smtp::domainOf(address);
}

}  // namespace

const char* QueueManager::statusName(Status s) {
  switch (s) {
    case Status::kPending:
      return "pending";
    case Status::kDeferred:
      return "deferred";
    case Status::kDelivered:
      return "delivered";
    case Status::kFailed:
      return "failed";
  }
  return "pending";
}

std::string QueueManager::encodeState(const Message& m) {
  std::string flags;
  if (m.admin_hold) flags += 'h';
  if (m.released) flags += 'r';
  std::string out = fmt::format("q1\t{}\t{}\t{}", m.loc.segment, m.loc.offset, m.first_seen);
  if (!flags.empty()) out += "\t" + flags;
  out += '\n';
  for (const auto& r : m.rcpts)
    out += fmt::format("r\t{}\t{}\t{}\t{}\t{}\t{}\n", statusName(r.status), r.attempts,
                       r.next_attempt, oneLine(r.address), oneLine(r.last_reply), r.dns_errors);
  return out;
}

bool QueueManager::decodeState(std::string_view text, Message* m) {
  bool head = false;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (!head) {
      auto f = split(line, '\t', 5);
      if (f.size() < 4 || f[0] != "q1" || !parseNum(f[1], &m->loc.segment) ||
          !parseNum(f[2], &m->loc.offset) || !parseNum(f[3], &m->first_seen))
        return false;
      if (f.size() == 5) {
        m->admin_hold = f[4].find('h') != std::string_view::npos;
        m->released = f[4].find('r') != std::string_view::npos;
      }
      head = true;
      continue;
    }
    auto f = split(line, '\t', 7);
    if (f.size() < 6 || f[0] != "r") return false;
    RcptState r;
    if (f[1] == "pending")
      r.status = Status::kPending;
    else if (f[1] == "deferred")
      r.status = Status::kDeferred;
    else if (f[1] == "delivered")
      r.status = Status::kDelivered;
    else if (f[1] == "failed")
      r.status = Status::kFailed;
    else
      return false;
    if (!parseNum(f[2], &r.attempts) || !parseNum(f[3], &r.next_attempt)) return false;
    r.address = f[4];
    r.last_reply = f[5];
    if (f.size() == 7 && !parseNum(f[6], &r.dns_errors)) return false;
    m->rcpts.push_back(std::move(r));
  }
  return head;
}

std::vector<RecipientDelivery> QueueManager::loadDelivery(KvStore& store,
                                                          const std::string& queue_id) {
  std::vector<RecipientDelivery> out;
  auto saved = store.get(kQueueBucket, queue_id);
  Message m;
  if (!saved || !decodeState(*saved, &m)) return out;
  for (const RcptState& r : m.rcpts)
    out.push_back({r.address, statusName(r.status), r.attempts, r.next_attempt, r.last_reply});
  return out;
}

std::string QueueManager::loadFlags(KvStore& store, const std::string& queue_id) {
  auto saved = store.get(kQueueBucket, queue_id);
  Message m;
  if (!saved || !decodeState(*saved, &m)) return {};
  return std::string(m.admin_hold ? "h" : "") + (m.released ? "r" : "");
}

QueueManager::QueueManager(Options options)
    : options_(std::move(options)), local_pool_(std::max<size_t>(1, options_.local_threads), 4096) {
  if (options_.retry_schedule.empty()) options_.retry_schedule = {std::chrono::hours(1)};
  // A back-off longer than the first retry step would turn every early
  // retry into a no-op.
  options_.destination_backoff =
      std::min(options_.destination_backoff, options_.retry_schedule.front());
  if (!options_.clock) options_.clock = [] { return std::chrono::system_clock::now(); };
  if (options_.max_concurrency == 0) options_.max_concurrency = 1;
  if (options_.destination_concurrency == 0) options_.destination_concurrency = 1;
}

QueueManager::~QueueManager() {
  stop();
}

void QueueManager::start() {
  stopping_ = false;
  io_.restart();
  worker_ = std::thread([this] { workerLoop(); });
}

void QueueManager::stop(std::chrono::seconds grace) {
  if (!worker_.joinable()) return;
  asio::post(io_, [this, grace] {
    stopping_ = true;
    wake_.cancel();
    if (active_ == 0) {
      io_.stop();
      return;
    }
    // Running jobs get `grace` to finish; then the loop stops under them.
    auto timer = std::make_shared<asio::steady_timer>(io_, grace);
    timer->async_wait([this, timer](asio::error_code) { io_.stop(); });
  });
  worker_.join();
  if (options_.on_stopped) options_.on_stopped();
}

void QueueManager::enqueue(const SpoolMeta& meta, SpoolLocation loc) {
  {
    std::lock_guard lock(mu_);
    incoming_.emplace_back(meta, loc);
  }
  asio::post(io_, [this] { wake_.cancel(); });
}

QueueStats QueueManager::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

int64_t QueueManager::nowUnix() const {
  return std::chrono::duration_cast<std::chrono::seconds>(options_.clock().time_since_epoch())
      .count();
}

bool QueueManager::hasDeferred(const Message& m) {
  return std::any_of(m.rcpts.begin(), m.rcpts.end(),
                     [](const RcptState& r) { return r.status == Status::kDeferred; });
}

int QueueManager::priorityOf(const Message& m) const {
  int p = m.base_priority;
  bool retried = std::any_of(m.rcpts.begin(), m.rcpts.end(),
                             [](const RcptState& r) { return r.attempts > 0; });
  if (retried) p = std::min(p, options_.priority.retry_priority);
  return p;
}

bool QueueManager::domainHeld(const std::string& address) const {
  return !held_domains_.empty() && held_domains_.count(domainPart(address)) > 0;
}

void QueueManager::updateCounts(const Message& m, int sign) {
  if (m.finished) return;
  if (m.held()) {
    held_count_ += sign;
  } else {
    open_count_ += sign;
    if (hasDeferred(m)) deferred_count_ += sign;
  }
}

void QueueManager::admit(const std::string& id, const SpoolMeta& meta, SpoolLocation loc) {
  if (id.empty() || messages_.count(id) > 0) return;  // already known: a duplicate enqueue
  Message m;
  m.loc = loc;
  m.received_ms = meta.received_ms;
  m.first_seen = meta.received_ms / 1000;
  m.quarantined = meta.action == "quarantine";
  m.size = meta.envelope.declared_size;
  m.sender_domain = domainPart(meta.envelope.mail_from);
  const PriorityConfig& pc = options_.priority;
  m.base_priority = pc.normal;
  if (auto it = pc.sender_domains.find(m.sender_domain); it != pc.sender_domains.end())
    m.base_priority = it->second;
  else if (pc.large_message > 0 && m.size >= pc.large_message)
    m.base_priority = pc.large_priority;
  for (const auto& r : meta.envelope.rcpts) {
    m.rcpts.emplace_back();
    m.rcpts.back().address = r.address;
  }
  std::optional<std::string> saved;
  try {
    saved = options_.store->get(kQueueBucket, id);
  } catch (const StoreError& e) {
    spdlog::error("{}: queue state unreadable, delivering all recipients: {}", id, e.what());
  }
  if (saved) {
    Message stored;
    if (decodeState(*saved, &stored) && stored.rcpts.size() == m.rcpts.size()) {
      m.first_seen = stored.first_seen;
      m.admin_hold = stored.admin_hold;
      m.released = stored.released;
      m.rcpts = std::move(stored.rcpts);
    } else {
      // At-least-once: a state we cannot trust means every recipient again.
      spdlog::error("{}: queue state malformed, delivering all recipients", id);
    }
  }
  // Local deliveries recorded by the pool but not yet in the state.
  std::vector<std::pair<size_t, std::string>> done;
  try {
    options_.store->scan(kDoneBucket, id + "/", [&](std::string_view key, std::string_view value) {
      size_t idx = 0;
      if (parseNum(key.substr(id.size() + 1), &idx)) done.emplace_back(idx, std::string(value));
      return true;
    });
  } catch (const StoreError& e) {
    spdlog::error("{}: delivery records unreadable: {}", id, e.what());
  }
  for (auto& [idx, reply] : done) {
    if (idx >= m.rcpts.size() || m.rcpts[idx].status == Status::kDelivered) continue;
    m.rcpts[idx].status = Status::kDelivered;
    m.rcpts[idx].last_reply = reply;
  }
  m.finished = std::all_of(m.rcpts.begin(), m.rcpts.end(),
                           [](const RcptState& r) { return isFinal(r.status); });
  Segment& seg = segments_[loc.segment];
  seg.ids.push_back(id);
  if (!m.finished) {
    ++seg.open;
    updateCounts(m, +1);
    if (m.held())
      spdlog::info("{}: held ({}), not delivered", id,
                   m.admin_hold ? "by the admin" : "quarantine");
    else
      schedule(id, m);
  }
  messages_.emplace(id, std::move(m));
}

void QueueManager::admitIncoming() {
  std::deque<std::pair<SpoolMeta, SpoolLocation>> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(incoming_);
  }
  for (const auto& [meta, loc] : batch) admit(meta.queue_id, meta, loc);
}

// Puts an open, unheld message without running jobs into schedule_ at its
// earliest due recipient (recipients of held domains do not count).
void QueueManager::schedule(const std::string& id, Message& m) {
  if (m.finished || m.held() || m.jobs > 0) return;
  int64_t due = INT64_MAX;
  for (const auto& r : m.rcpts)
    if (!isFinal(r.status) && !domainHeld(r.address)) due = std::min(due, r.next_attempt);
  m.due = due;
  if (due != INT64_MAX) schedule_.emplace(due, id);
}

void QueueManager::unschedule(const std::string& id, const Message& m) {
  schedule_.erase({m.due, id});
}

void QueueManager::recover() {
  std::set<uint64_t> present;
  auto segments = listSegments(options_.segments_dir);
  for (const auto& [n, path] : segments) present.insert(n);

  // Keys whose segment is gone: left by a crash between deleting a segment
  // and erasing its keys (see the header). Collected first: scan() forbids
  // calling back into the store.
  std::vector<std::string> stale;
  options_.store->scan(kQueueBucket, "", [&](std::string_view key, std::string_view value) {
    Message m;
    if (!decodeState(value, &m) || present.count(m.loc.segment) == 0) stale.emplace_back(key);
    return true;
  });
  for (const auto& key : stale) options_.store->erase(kQueueBucket, key);
  options_.store->scan(kHoldBucket, "", [&](std::string_view key, std::string_view) {
    held_domains_.emplace(key);
    return true;
  });

  for (const auto& [n, path] : segments) {
    segments_[n];  // an empty (or emptied) segment is drained too
    SegmentReport rep = readSegment(path, n, [&](const SpoolRecordView& rec) {
      admit(rec.meta.queue_id, rec.meta, SpoolLocation{rec.segment, rec.offset});
      return true;
    });
    if (!rep.problem.empty()) spdlog::warn("queue: {}: {}", path, rep.problem);
  }
  // Markers of messages no segment holds any more (a crash during clean-up).
  std::vector<std::string> stale_done;
  options_.store->scan(kDoneBucket, "", [&](std::string_view key, std::string_view) {
    if (messages_.count(std::string(key.substr(0, key.find('/')))) == 0)
      stale_done.emplace_back(key);
    return true;
  });
  for (const auto& key : stale_done) options_.store->erase(kDoneBucket, key);
  spdlog::info(
      "queue: recovered {} message(s) to deliver ({} deferred), {} held, in {} segment(s){}{}",
      open_count_, deferred_count_, held_count_, segments.size(),
      stale.empty() ? "" : fmt::format("; erased {} stale state key(s)", stale.size()),
      held_domains_.empty() ? "" : fmt::format("; {} domain(s) on hold", held_domains_.size()));
  publishStats();
}

size_t QueueManager::runDue() {
  admitIncoming();
  size_t attempts = dispatchDue();
  // Jobs run on io_; run it until every one has finished.
  io_.restart();
  io_.run();
  dropDrainedSegments();
  publishStats();
  return attempts;
}

size_t QueueManager::dispatchDue() {
  // Take what is due now first, so a zero retry delay cannot loop forever.
  int64_t now = nowUnix();
  std::vector<std::string> due;
  while (!schedule_.empty() && schedule_.begin()->first <= now) {
    due.push_back(schedule_.begin()->second);
    schedule_.erase(schedule_.begin());
  }
  size_t attempts = 0;
  for (const std::string& id : due) attempts += dispatch(id, messages_.at(id));
  pump();
  return attempts;
}

size_t QueueManager::dispatch(const std::string& id, Message& m) {
  int64_t now = nowUnix();
  // Group the due recipients by destination: one job per destination.
  std::map<std::string, Job> jobs;
  for (size_t i = 0; i < m.rcpts.size(); ++i) {
    RcptState& r = m.rcpts[i];
    if (isFinal(r.status) || r.in_flight || r.next_attempt > now || domainHeld(r.address)) continue;
    std::string domain = domainPart(r.address);
    Destination d = options_.route ? options_.route(domain, priorityOf(m))
                                   : Destination{"local", nullptr, nullptr, {}};
    Job& job = jobs[d.key];
    if (job.id.empty()) {
      job.id = id;
      job.dest = std::move(d);
    }
    job.rcpts.push_back(i);
    r.in_flight = true;
  }
  size_t attempts = 0;
  int prio = priorityOf(m);
  for (auto& [key, job] : jobs) {
    attempts += job.rcpts.size();
    ++m.jobs;
    Dest& dest = dests_[key];
    if (dest.limit == 0) {
      size_t route_limit = job.dest.route ? job.dest.route->concurrency : 0;
      dest.limit = route_limit ? route_limit : options_.destination_concurrency;
    }
    dest.waiting.emplace(std::make_pair(-prio, job_seq_++), std::move(job));
  }
  if (m.jobs == 0) schedule(id, m);  // nothing due after all (held domains)
  return attempts;
}

// Starts waiting jobs while the overall and per-destination limits allow,
// highest priority first across destinations.
void QueueManager::pump() {
  while (active_ < options_.max_concurrency && !stopping_) {
    Dest* best = nullptr;
    for (auto& [key, d] : dests_)
      if (!d.waiting.empty() && d.active < d.limit &&
          (best == nullptr || d.waiting.begin()->first < best->waiting.begin()->first))
        best = &d;
    if (best == nullptr) return;
    Job job = std::move(best->waiting.begin()->second);
    best->waiting.erase(best->waiting.begin());
    ++best->active;
    ++active_;
    Message& m = messages_.at(job.id);
    if (!m.loaded) {
      auto loaded = std::make_shared<LoadedMessage>();
      std::string error = readRecordAt(segmentPath(options_.segments_dir, m.loc.segment),
                                       m.loc.offset, &loaded->meta, &loaded->body);
      if (error.empty() && loaded->meta.queue_id != job.id)
        error = "record holds " + loaded->meta.queue_id;
      if (!error.empty()) {
        std::vector<DeliveryResult> results(
            job.rcpts.size(),
            {DeliveryResult::Kind::kDeferred, "4.3.0 cannot read spool record: " + error});
        --best->active;
        --active_;
        std::string id = job.id;
        applyResults(id, m, job, std::move(results));
        continue;
      }
      m.loaded = std::move(loaded);
    }
    asio::co_spawn(io_, runJob(std::move(job), m.loaded), asio::detached);
  }
}

asio::awaitable<void> QueueManager::runJob(Job job, std::shared_ptr<const LoadedMessage> loaded) {
  std::vector<DeliveryResult> results;
  Dest& dest = dests_[job.dest.key];
  int64_t now = nowUnix();
  try {
    if (!job.dest.unavailable.empty()) {
      results.assign(job.rcpts.size(), {DeliveryResult::Kind::kDeferred, job.dest.unavailable});
    } else if (dest.down_until > now) {
      results.assign(job.rcpts.size(), {DeliveryResult::Kind::kDeferred, dest.down_reply});
    } else if (job.dest.transport != nullptr) {
      TransportJob tj;
      tj.message = loaded;
      tj.domain = domainPart(loaded->meta.envelope.rcpts.at(job.rcpts.front()).address);
      tj.route = job.dest.route;
      for (size_t i : job.rcpts) tj.rcpts.push_back(&loaded->meta.envelope.rcpts.at(i));
      results = co_await job.dest.transport->deliver(tj);
    } else if (options_.local == nullptr) {
      results.assign(job.rcpts.size(),
                     {DeliveryResult::Kind::kDeferred, "4.3.5 local delivery is not configured"});
    } else {
      // Local delivery blocks (fsync): on the pool, one recipient at a time
      // so a crash re-delivers as little as possible.
      for (size_t i : job.rcpts) {
        DeliveryAgent* agent = options_.local;
        // Named, not a temporary inside the co_await expression: g++ 12
        // destroys such temporaries twice (a double release of `loaded`).
        KvStore* store = options_.store;
        auto task = [agent, loaded, i, store] {
          DeliveryResult r =
              agent->deliver(loaded->meta, loaded->body, loaded->meta.envelope.rcpts.at(i));
          if (r.kind == DeliveryResult::Kind::kDelivered) {
            try {
              store->put(kDoneBucket, doneKey(loaded->meta.queue_id, i), r.reply);
            } catch (const StoreError& e) {
              spdlog::error("{}: cannot record delivery (a crash now repeats it): {}",
                            loaded->meta.queue_id, e.what());
            }
          }
          return r;
        };
        DeliveryResult r = co_await local_pool_.run(std::move(task));
        results.push_back(std::move(r));
      }
    }
  } catch (const std::exception& e) {
    results.assign(job.rcpts.size(), {DeliveryResult::Kind::kDeferred,
                                      std::string("4.3.0 delivery error: ") + e.what()});
  }
  if (results.size() != job.rcpts.size())
    results.resize(job.rcpts.size(),
                   {DeliveryResult::Kind::kDeferred, "4.3.0 transport gave no result"});
  bool all_down = std::all_of(results.begin(), results.end(), [](const DeliveryResult& r) {
    return r.kind == DeliveryResult::Kind::kDeferred && r.destination_down;
  });
  if (all_down && dest.down_until <= now) {
    dest.down_until = nowUnix() + options_.destination_backoff.count();
    dest.down_reply = results.front().reply;
    spdlog::warn("queue: destination {} unreachable, backing off {}s: {}", job.dest.key,
                 options_.destination_backoff.count(), dest.down_reply);
  }
  --dest.active;
  --active_;
  std::string id = job.id;
  auto it = messages_.find(id);
  if (it != messages_.end()) applyResults(id, it->second, job, std::move(results));
  pump();
  if (active_ == 0 && stopping_) io_.stop();
  co_return;
}

void QueueManager::applyResults(const std::string& id, Message& m, const Job& job,
                                std::vector<DeliveryResult> results) {
  updateCounts(m, -1);
  int64_t now = nowUnix();
  const RouteConfig* route = job.dest.route;
  const auto& schedule =
      route && !route->retry_schedule.empty() ? route->retry_schedule : options_.retry_schedule;
  auto lifetime = route && route->max_lifetime ? *route->max_lifetime : options_.max_lifetime;
  std::vector<size_t> failed;
  std::vector<DeliveryResult> failed_results;
  for (size_t k = 0; k < job.rcpts.size(); ++k) {
    RcptState& r = m.rcpts[job.rcpts[k]];
    DeliveryResult& res = results[k];
    r.in_flight = false;
    ++r.attempts;
    r.last_reply = res.reply;
    switch (res.kind) {
      case DeliveryResult::Kind::kDelivered:
        r.status = Status::kDelivered;
        break;
      case DeliveryResult::Kind::kFailed:
        r.status = Status::kFailed;
        break;
      case DeliveryResult::Kind::kDeferred:
        if (res.dns_error) ++r.dns_errors;
        if (res.dns_error && r.dns_errors >= options_.dns_error_limit) {
          r.status = Status::kFailed;
          r.last_reply =
              fmt::format("5.4.4 unable to route after {} attempt(s): {}", r.dns_errors, res.reply);
        } else if (now - m.first_seen >= lifetime.count()) {
          r.status = Status::kFailed;
          r.last_reply = fmt::format("5.4.7 delivery time expired after {} attempt(s), last: {}",
                                     r.attempts, res.reply);
        } else {
          r.status = Status::kDeferred;
          size_t step = std::min<size_t>(r.attempts - 1, schedule.size() - 1);
          r.next_attempt = now + schedule[step].count();
        }
        break;
    }
    if (r.status == Status::kFailed) {
      failed.push_back(job.rcpts[k]);
      res.reply = r.last_reply;
      failed_results.push_back(res);
    }
    int64_t delay_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.clock().time_since_epoch())
            .count() -
        m.received_ms;
    spdlog::info("{}: to=<{}> relay={} status={} delay={:.1f}s attempts={} reply=\"{}\"", id,
                 r.address, res.remote.empty() ? job.dest.key : res.remote, statusName(r.status),
                 std::max<int64_t>(delay_ms, 0) / 1000.0, r.attempts, r.last_reply);
  }
  // Durable before the recipients count as done: see the header.
  persist(id, m);
  if (!failed.empty() && options_.on_failed && m.loaded) {
    try {
      options_.on_failed(*m.loaded, failed, failed_results);
    } catch (const std::exception& e) {
      spdlog::error("{}: failure notification: {}", id, e.what());
    }
  }
  jobDone(id, m);
}

void QueueManager::jobDone(const std::string& id, Message& m) {
  --m.jobs;
  m.finished = std::all_of(m.rcpts.begin(), m.rcpts.end(),
                           [](const RcptState& r) { return isFinal(r.status); });
  if (m.finished) {
    --segments_[m.loc.segment].open;
    m.loaded.reset();
    return;
  }
  updateCounts(m, +1);
  if (m.jobs == 0) {
    m.loaded.reset();
    schedule(id, m);
  }
}

void QueueManager::eraseDone(const std::string& id) {
  std::vector<std::string> keys;
  options_.store->scan(kDoneBucket, id + "/", [&](std::string_view key, std::string_view) {
    keys.emplace_back(key);
    return true;
  });
  for (const auto& k : keys) options_.store->erase(kDoneBucket, k);
}

void QueueManager::persist(const std::string& id, const Message& m) {
  try {
    options_.store->put(kQueueBucket, id, encodeState(m));
  } catch (const StoreError& e) {
    spdlog::error("{}: cannot record delivery state (a restart may repeat it): {}", id, e.what());
  }
}

void QueueManager::dropDrainedSegments() {
  uint64_t current = 0;
  bool have_current = false;
  for (auto it = segments_.begin(); it != segments_.end();) {
    uint64_t n = it->first;
    Segment& seg = it->second;
    if (seg.open > 0) {
      ++it;
      continue;
    }
    if (!have_current) {
      if (options_.current_segment) {
        current = options_.current_segment();
      } else {
        auto all = listSegments(options_.segments_dir);
        current = all.empty() ? 0 : all.back().first;
      }
      have_current = true;
    }
    if (n >= current) break;  // ascending: the rest are newer still
    std::string path = segmentPath(options_.segments_dir, n);
    // A record whose enqueue() has not arrived yet may sit in this segment:
    // admit every record of the file first, so nothing unknown is deleted.
    readSegment(path, n, [&](const SpoolRecordView& rec) {
      admit(rec.meta.queue_id, rec.meta, SpoolLocation{rec.segment, rec.offset});
      return true;
    });
    if (seg.open > 0) {
      ++it;
      continue;
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      spdlog::error("queue: cannot delete finished segment {}: {}", path, std::strerror(errno));
      ++it;
      continue;
    }
    if (int err = fsyncDir(options_.segments_dir))
      spdlog::error("queue: cannot sync {}: {}", options_.segments_dir, std::strerror(err));
    // Only after the file is gone: a crash before this leaves stale keys,
    // which recover() erases.
    for (const auto& id : seg.ids) {
      try {
        options_.store->erase(kQueueBucket, id);
        eraseDone(id);
      } catch (const StoreError& e) {
        spdlog::error("{}: cannot erase queue state: {}", id, e.what());
      }
      messages_.erase(id);
    }
    spdlog::info("queue: segment {:016x} finished ({} message(s)), deleted", n, seg.ids.size());
    it = segments_.erase(it);
  }
}

void QueueManager::publishStats() {
  std::lock_guard lock(mu_);
  stats_ = QueueStats{open_count_, deferred_count_, held_count_, active_};
}

void QueueManager::workerLoop() {
  try {
    recover();
  } catch (const std::exception& e) {
    // Without recovery only new mail flows; old mail stays safe in the spool.
    spdlog::error("queue: recovery failed, only new messages will be delivered: {}", e.what());
  }
  asio::co_spawn(io_, schedulerLoop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::critical("queue: scheduler stopped: {}", ex.what());
    }
  });
  io_.run();
}

asio::awaitable<void> QueueManager::schedulerLoop() {
  auto last_gc = std::chrono::steady_clock::time_point();
  while (!stopping_) {
    try {
      admitIncoming();
      dispatchDue();
      // Segment deletion reads and unlinks files: at most once a second.
      if (std::chrono::steady_clock::now() - last_gc >= std::chrono::seconds(1)) {
        dropDrainedSegments();
        last_gc = std::chrono::steady_clock::now();
      }
    } catch (const std::exception& e) {
      spdlog::error("queue: {}", e.what());
    }
    publishStats();
    // Sleep until the next due time, a new message, a finished job or a
    // command; at most a second, so finished jobs' segments are collected
    // and a segment the spool has moved past is noticed.
    auto wait = std::chrono::seconds(1);
    if (!schedule_.empty())
      wait = std::clamp(std::chrono::seconds(schedule_.begin()->first - nowUnix()),
                        std::chrono::seconds(0), wait);
    wake_.expires_after(wait);
    co_await wake_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }
}

void QueueManager::command(std::string line, std::function<void(std::string)> done) {
  asio::post(io_, [this, line = std::move(line), done = std::move(done)] {
    std::string reply;
    try {
      reply = commandNow(line);
    } catch (const std::exception& e) {
      reply = std::string("error ") + e.what();
    }
    wake_.cancel();  // flushed or released mail goes out now
    done(std::move(reply));
  });
}

std::string QueueManager::commandNow(const std::string& line) {
  auto words = split(line, ' ', 3);
  std::string verb(words[0]);
  std::string arg = words.size() > 1 ? std::string(words[1]) : std::string();
  auto find = [&](Message** out) -> std::string {
    auto it = messages_.find(arg);
    if (arg.empty()) return "error a queue id is needed";
    if (it == messages_.end() || it->second.finished) return "error no queued message " + arg;
    *out = &it->second;
    return {};
  };
  auto makeDue = [&](const std::string& id, Message& m, bool reset) {
    if (m.finished) return 0;
    unschedule(id, m);
    int n = 0;
    for (RcptState& r : m.rcpts) {
      if (isFinal(r.status)) continue;
      r.next_attempt = 0;
      if (reset) {
        r.attempts = 0;
        r.dns_errors = 0;
      }
      ++n;
    }
    if (reset) persist(id, m);
    schedule(id, m);
    return n;
  };
  if (verb == "flush" || verb == "flush-domain" || verb == "retry-reset") {
    bool reset = verb == "retry-reset";
    if (verb == "flush-domain") arg = toLower(arg);
    size_t n = 0;
    // The admin says "try now": destinations in back-off too.
    for (auto& [key, d] : dests_) d.down_until = 0;
    if (verb == "flush" && !arg.empty()) {
      Message* m = nullptr;
      if (auto err = find(&m); !err.empty()) return err;
      n = makeDue(arg, *m, false);
    } else {
      for (auto& [id, m] : messages_)
        if (!m.held() &&
            (arg.empty() || std::any_of(m.rcpts.begin(), m.rcpts.end(), [&](const RcptState& r) {
               return domainPart(r.address) == arg;
             })))
          n += makeDue(id, m, reset);
    }
    spdlog::info("queue: {} {}: {} recipient(s) due now", verb, arg.empty() ? "all" : arg, n);
    return fmt::format("ok {} recipient(s) due now", n);
  }
  if (verb == "hold" || verb == "release" || verb == "delete") {
    Message* m = nullptr;
    if (auto err = find(&m); !err.empty()) return err;
    if (m->jobs > 0) return "error " + arg + " is being delivered right now; try again";
    updateCounts(*m, -1);
    unschedule(arg, *m);
    if (verb == "hold") {
      m->admin_hold = true;
    } else if (verb == "release") {
      m->admin_hold = false;
      if (m->quarantined) m->released = true;
    } else {
      for (RcptState& r : m->rcpts)
        if (!isFinal(r.status)) {
          r.status = Status::kFailed;
          r.last_reply = "5.0.0 deleted by the administrator";
        }
      m->finished = true;
      --segments_[m->loc.segment].open;
    }
    persist(arg, *m);
    updateCounts(*m, +1);
    schedule(arg, *m);
    spdlog::info("queue: {}: {} by the administrator", arg,
                 verb == "hold"      ? "held"
                 : verb == "release" ? "released"
                                     : "deleted");
    publishStats();
    return "ok " + arg + (verb == "hold" ? " held" : verb == "release" ? " released" : " deleted");
  }
  if (verb == "hold-domain" || verb == "release-domain") {
    if (arg.empty()) return "error a domain is needed";
    std::string d = toLower(arg);
    if (verb == "hold-domain") {
      options_.store->put(kHoldBucket, d, "1");
      held_domains_.insert(d);
    } else {
      options_.store->erase(kHoldBucket, d);
      held_domains_.erase(d);
    }
    // Due times ignore held domains: recompute every open message's.
    for (auto& [id, m] : messages_) {
      unschedule(id, m);
      schedule(id, m);
    }
    spdlog::info("queue: delivery to {} {} by the administrator", d,
                 verb == "hold-domain" ? "held" : "released");
    return "ok " + d + (verb == "hold-domain" ? " held" : " released");
  }
  if (verb == "holds") {
    std::string out = fmt::format("ok {} domain(s) held", held_domains_.size());
    for (const auto& d : held_domains_) out += "\n" + d;
    return out;
  }
  return "error unknown queue command \"" + verb + "\"";
}

}  // namespace mxgate
