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

#include "gateway/smtp/command.h"

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
  std::string out = fmt::format("q1\t{}\t{}\t{}\n", m.loc.segment, m.loc.offset, m.first_seen);
  for (const auto& r : m.rcpts)
    out += fmt::format("r\t{}\t{}\t{}\t{}\t{}\n", statusName(r.status), r.attempts, r.next_attempt,
                       oneLine(r.address), oneLine(r.last_reply));
  return out;
}

bool QueueManager::decodeState(std::string_view text, Message* m) {
  bool head = false;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    auto f = split(line, '\t', 6);
    if (!head) {
      if (f.size() != 4 || f[0] != "q1" || !parseNum(f[1], &m->loc.segment) ||
          !parseNum(f[2], &m->loc.offset) || !parseNum(f[3], &m->first_seen))
        return false;
      head = true;
      continue;
    }
    if (f.size() != 6 || f[0] != "r") return false;
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

QueueManager::QueueManager(Options options) : options_(std::move(options)) {
  if (options_.retry_schedule.empty()) options_.retry_schedule = {std::chrono::hours(1)};
  if (!options_.clock) options_.clock = [] { return std::chrono::system_clock::now(); };
}

QueueManager::~QueueManager() {
  stop();
}

void QueueManager::start() {
  stop_requested_ = false;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  worker_ = std::thread([this] { workerLoop(); });
}

void QueueManager::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_requested_ = true;
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void QueueManager::enqueue(const SpoolMeta& meta, SpoolLocation loc) {
  {
    std::lock_guard lock(mu_);
    incoming_.emplace_back(meta, loc);
  }
  cv_.notify_one();
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

void QueueManager::admit(const std::string& id, const SpoolMeta& meta, SpoolLocation loc) {
  if (id.empty() || messages_.count(id) > 0) return;  // already known: a duplicate enqueue
  Message m;
  m.loc = loc;
  m.received_ms = meta.received_ms;
  m.first_seen = meta.received_ms / 1000;
  m.held = meta.action == "quarantine";
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
      m.rcpts = std::move(stored.rcpts);
    } else {
      // At-least-once: a state we cannot trust means every recipient again.
      spdlog::error("{}: queue state malformed, delivering all recipients", id);
    }
  }
  m.finished = std::all_of(m.rcpts.begin(), m.rcpts.end(),
                           [](const RcptState& r) { return isFinal(r.status); });
  Segment& seg = segments_[loc.segment];
  seg.ids.push_back(id);
  if (!m.finished) {
    ++seg.open;
    if (m.held) {
      ++held_count_;
      spdlog::info("{}: held (quarantine), not delivered", id);
    } else {
      ++open_count_;
      if (hasDeferred(m)) ++deferred_count_;
      refreshDue(id, m);
    }
  }
  messages_.emplace(id, std::move(m));
}

void QueueManager::refreshDue(const std::string& id, Message& m) {
  int64_t due = INT64_MAX;
  for (const auto& r : m.rcpts)
    if (!isFinal(r.status)) due = std::min(due, r.next_attempt);
  m.due = due;
  schedule_.emplace(due, id);
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

  for (const auto& [n, path] : segments) {
    segments_[n];  // an empty (or emptied) segment is drained too
    SegmentReport rep = readSegment(path, n, [&](const SpoolRecordView& rec) {
      admit(rec.meta.queue_id, rec.meta, SpoolLocation{rec.segment, rec.offset});
      return true;
    });
    if (!rep.problem.empty()) spdlog::warn("queue: {}: {}", path, rep.problem);
  }
  spdlog::info(
      "queue: recovered {} message(s) to deliver ({} deferred), {} held, in {} segment(s){}",
      open_count_, deferred_count_, held_count_, segments.size(),
      stale.empty() ? "" : fmt::format("; erased {} stale state key(s)", stale.size()));
  publishStats();
}

size_t QueueManager::runDue() {
  std::deque<std::pair<SpoolMeta, SpoolLocation>> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(incoming_);
  }
  for (const auto& [meta, loc] : batch) admit(meta.queue_id, meta, loc);

  // Take what is due now first, so a zero retry delay cannot loop forever.
  int64_t now = nowUnix();
  std::vector<std::string> due;
  while (!schedule_.empty() && schedule_.begin()->first <= now) {
    due.push_back(schedule_.begin()->second);
    schedule_.erase(schedule_.begin());
  }
  size_t attempts = 0;
  for (size_t i = 0; i < due.size(); ++i) {
    Message& m = messages_.at(due[i]);
    if (stop_requested_) {
      schedule_.emplace(m.due, due[i]);  // not started: stays scheduled
      continue;
    }
    for (const auto& r : m.rcpts) attempts += !isFinal(r.status) && r.next_attempt <= now;
    deliverMessage(due[i], m);
  }
  dropDrainedSegments();
  publishStats();
  return attempts;
}

void QueueManager::deliverMessage(const std::string& id, Message& m) {
  SpoolMeta meta;
  std::string body;
  std::string read_error =
      readRecordAt(segmentPath(options_.segments_dir, m.loc.segment), m.loc.offset, &meta, &body);
  if (read_error.empty() && meta.queue_id != id) read_error = "record holds " + meta.queue_id;
  bool was_deferred = hasDeferred(m);
  int64_t now = nowUnix();
  for (size_t i = 0; i < m.rcpts.size(); ++i) {
    RcptState& r = m.rcpts[i];
    if (isFinal(r.status) || r.next_attempt > now) continue;
    // Between recipients is the only place a stop takes effect.
    if (stop_requested_) break;
    DeliveryResult res;
    if (!read_error.empty()) {
      res = {DeliveryResult::Kind::kDeferred, "4.3.0 cannot read spool record: " + read_error};
    } else {
      const Recipient& rcpt = meta.envelope.rcpts[i];
      std::string domain = smtp::domainOf(rcpt.address);
      DeliveryAgent* agent = options_.route ? options_.route(domain) : options_.local;
      try {
        if (agent == nullptr) {
          res = {DeliveryResult::Kind::kDeferred, "4.4.0 no delivery route for " + domain +
                                                      " yet (outbound delivery is not available)"};
        } else {
          res = agent->deliver(meta, body, rcpt);
        }
      } catch (const std::exception& e) {
        res = {DeliveryResult::Kind::kDeferred,
               std::string("4.3.0 delivery agent error: ") + e.what()};
      }
    }
    ++r.attempts;
    r.last_reply = res.reply;
    now = nowUnix();
    switch (res.kind) {
      case DeliveryResult::Kind::kDelivered:
        r.status = Status::kDelivered;
        break;
      case DeliveryResult::Kind::kFailed:
        r.status = Status::kFailed;
        break;
      case DeliveryResult::Kind::kDeferred:
        if (now - m.first_seen >= options_.max_lifetime.count()) {
          r.status = Status::kFailed;
          r.last_reply = fmt::format("5.4.7 delivery time expired after {} attempt(s), last: {}",
                                     r.attempts, res.reply);
        } else {
          r.status = Status::kDeferred;
          size_t step = std::min<size_t>(r.attempts - 1, options_.retry_schedule.size() - 1);
          r.next_attempt = now + options_.retry_schedule[step].count();
        }
        break;
    }
    // Durable before the next recipient: see the header for the guarantee.
    try {
      options_.store->put(kQueueBucket, id, encodeState(m));
    } catch (const StoreError& e) {
      spdlog::error("{}: cannot record delivery state (a restart may repeat it): {}", id, e.what());
    }
    int64_t delay_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.clock().time_since_epoch())
            .count() -
        m.received_ms;
    spdlog::info("{}: to=<{}> relay=local status={} delay={:.1f}s attempts={} reply=\"{}\"", id,
                 r.address, statusName(r.status), std::max<int64_t>(delay_ms, 0) / 1000.0,
                 r.attempts, r.last_reply);
    if (r.status == Status::kFailed)
      // Bounces do not exist yet: the sender is not told. This log line is
      // where a DSN would be generated once they do.
      spdlog::warn("{}: to=<{}> failed; no bounce sent to <{}> (bounces not implemented yet)", id,
                   r.address, meta.envelope.mail_from);
  }
  bool now_deferred = hasDeferred(m);
  if (was_deferred && !now_deferred) --deferred_count_;
  if (!was_deferred && now_deferred) ++deferred_count_;
  if (std::all_of(m.rcpts.begin(), m.rcpts.end(),
                  [](const RcptState& r) { return isFinal(r.status); })) {
    m.finished = true;
    --open_count_;
    --segments_[m.loc.segment].open;
  } else {
    refreshDue(id, m);
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
  stats_ = QueueStats{open_count_, deferred_count_, held_count_};
}

void QueueManager::workerLoop() {
  try {
    recover();
  } catch (const std::exception& e) {
    // Without recovery only new mail flows; old mail stays safe in the spool.
    spdlog::error("queue: recovery failed, only new messages will be delivered: {}", e.what());
  }
  while (true) {
    try {
      runDue();
    } catch (const std::exception& e) {
      spdlog::error("queue: {}", e.what());
    }
    // Sleep until the next due time, a new message, or stop; at most a
    // minute, so a segment the spool has moved past is noticed.
    auto wait = std::chrono::seconds(60);
    if (!schedule_.empty())
      wait = std::clamp(std::chrono::seconds(schedule_.begin()->first - nowUnix()),
                        std::chrono::seconds(0), wait);
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, wait, [&] { return stopping_ || !incoming_.empty(); });
    if (stopping_) return;
  }
}

}  // namespace mxgate
