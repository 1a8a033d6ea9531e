#include "gateway/spool/spool.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <filesystem>

#include <spdlog/spdlog.h>

namespace mxgate {

int FileOps::open(const char* path, int flags, mode_t mode) {
  return ::open(path, flags, mode);
}
ssize_t FileOps::writev(int fd, const iovec* iov, int count) {
  return ::writev(fd, iov, count);
}
int FileOps::fdatasync(int fd) {
  return ::fdatasync(fd);
}
int FileOps::fsync(int fd) {
  return ::fsync(fd);
}
int FileOps::ftruncate(int fd, off_t length) {
  return ::ftruncate(fd, length);
}
int FileOps::close(int fd) {
  return ::close(fd);
}

namespace {

std::error_code lastError() {
  return {errno, std::system_category()};
}

}  // namespace

Spool::Spool(Options options)
    : options_(std::move(options)), ops_(options_.ops ? options_.ops : &default_ops_) {
  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  if (ec) throw std::system_error(ec, "cannot create spool directory " + options_.dir);
  dir_fd_ = ::open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0)
    throw std::system_error(lastError(), "cannot open spool directory " + options_.dir);
  // Recovery: every complete record is an acknowledged or at least durable
  // message. A torn tail was never acknowledged (its batch never synced), so
  // it is logged and left alone; new records always go to a new segment.
  for (const auto& [n, path] : listSegments(options_.dir)) {
    SegmentReport rep = readSegment(path, n, [](const SpoolRecordView&) { return true; });
    ++recovery_.segments;
    recovery_.records += rep.records;
    if (rep.unreadable > 0) {
      recovery_.unreadable += rep.unreadable;
      spdlog::error(
          "spool: {}: {} complete record(s) with an unreadable envelope are kept but skipped", path,
          rep.unreadable);
    }
    if (rep.trailing_bytes > 0) {
      ++recovery_.torn_segments;
      spdlog::warn("spool: {}: {} after {} complete records ({} bytes ignored)", path, rep.problem,
                   rep.records, rep.trailing_bytes);
    }
    segment_ = std::max(segment_, n);
  }
  // No segment is open yet: the first one will be segment_ + 1, and every
  // existing one is already closed for good.
  current_ = segment_ + 1;
  writer_ = std::thread([this] { writerLoop(); });
}

Spool::~Spool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  closeSegment();
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

uint64_t Spool::syncCount() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu_));
  return syncs_;
}

void Spool::append(std::string meta, std::vector<std::string_view> body, Done done) {
  Pending p;
  for (auto part : body) p.body_len += part.size();
  p.head = recordHeader(static_cast<uint32_t>(meta.size()), p.body_len);
  p.head += meta;
  p.body = std::move(body);
  p.done = std::move(done);
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
}

asio::awaitable<std::tuple<std::error_code, SpoolLocation>> Spool::write(
    std::string meta, std::vector<std::string_view> body) {
  auto token = asio::experimental::as_tuple(asio::use_awaitable);
  co_return co_await asio::async_initiate<decltype(token), void(std::error_code, SpoolLocation)>(
      [this, &meta, &body](auto handler) {
        // The handler is move-only; std::function needs copyable callables.
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        append(std::move(meta), std::move(body), [shared](std::error_code ec, SpoolLocation loc) {
          auto ex = asio::get_associated_executor(*shared);
          asio::post(ex, [shared, ec, loc]() mutable { std::move (*shared)(ec, loc); });
        });
      },
      token);
}

void Spool::writerLoop() {
  std::deque<Pending> batch;
  std::vector<SpoolLocation> locs;
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued is done
      batch.swap(queue_);
    }
    locs.clear();
    std::error_code ec = writeBatch(batch, &locs);
    {
      std::lock_guard lock(mu_);
      ++syncs_;
    }
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(ec, ec ? SpoolLocation{} : locs[i]);
    batch.clear();
  }
}

std::error_code Spool::openSegment() {
  ++segment_;
  current_ = segment_;
  std::string path = segmentPath(options_.dir, segment_);
  int fd = ops_->open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return lastError();
  std::string header = segmentHeader();
  iovec iov{header.data(), header.size()};
  // The directory entry must be durable before any record in the file is
  // acknowledged; the header itself is synced with the first batch.
  errno = 0;
  ssize_t w = ops_->writev(fd, &iov, 1);
  if (w >= 0 && w != static_cast<ssize_t>(header.size())) errno = EIO;  // short write
  if (w != static_cast<ssize_t>(header.size()) || ops_->fsync(dir_fd_) != 0) {
    std::error_code ec = errno ? lastError() : std::make_error_code(std::errc::io_error);
    ops_->close(fd);
    ::unlink(path.c_str());
    return ec;
  }
  fd_ = fd;
  size_ = header.size();
  return {};
}

void Spool::closeSegment() {
  if (fd_ >= 0) ops_->close(fd_);
  fd_ = -1;
}

std::error_code Spool::writeBatch(std::deque<Pending>& batch, std::vector<SpoolLocation>* locs) {
  if (fd_ < 0 || size_ >= options_.segment_size) {
    closeSegment();
    if (std::error_code ec = openSegment()) {
      spdlog::error("spool: cannot start segment in {}: {}", options_.dir, ec.message());
      return ec;
    }
  }
  const uint64_t start = size_;
  std::vector<iovec> iov;
  iov.reserve(batch.size() * 4);
  uint64_t offset = start;
  for (Pending& p : batch) {
    uint32_t crc = static_cast<uint32_t>(
        crc32_z(0L, reinterpret_cast<const Bytef*>(p.head.data()), p.head.size()));
    for (auto part : p.body)
      crc = static_cast<uint32_t>(
          crc32_z(crc, reinterpret_cast<const Bytef*>(part.data()), part.size()));
    p.tail.clear();
    putLe32(&p.tail, crc);
    putLe32(&p.tail, kRecordEnd);
    locs->push_back(SpoolLocation{segment_, offset});
    iov.push_back({p.head.data(), p.head.size()});
    for (auto part : p.body)
      if (!part.empty()) iov.push_back({const_cast<char*>(part.data()), part.size()});
    iov.push_back({p.tail.data(), p.tail.size()});
    offset += p.head.size() + p.body_len + p.tail.size();
  }
  std::error_code ec;
  size_t i = 0;
  while (i < iov.size() && !ec) {
    int n = static_cast<int>(std::min<size_t>(iov.size() - i, IOV_MAX));
    ssize_t w = ops_->writev(fd_, &iov[i], n);
    if (w < 0) {
      if (errno == EINTR) continue;
      ec = lastError();
      break;
    }
    size_ += static_cast<uint64_t>(w);
    // Advance over fully written vectors; adjust a partly written one.
    auto left = static_cast<size_t>(w);
    while (left > 0 && i < iov.size()) {
      if (left >= iov[i].iov_len) {
        left -= iov[i].iov_len;
        ++i;
      } else {
        iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
        iov[i].iov_len -= left;
        left = 0;
      }
    }
  }
  if (!ec && ops_->fdatasync(fd_) != 0) ec = lastError();
  if (ec) {
    spdlog::error("spool: writing {} message(s) to segment {} failed: {}", batch.size(), segment_,
                  ec.message());
    // Cut the segment back to the last good record and retire it; after a
    // failed sync the kernel may have dropped the dirty pages, so nothing
    // more is appended to this file.
    if (ops_->ftruncate(fd_, static_cast<off_t>(start)) == 0) ops_->fsync(fd_);
    closeSegment();
    return ec;
  }
  return {};
}

}  // namespace mxgate
