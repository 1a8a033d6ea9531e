#include "gateway/spool/spool_record.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>

namespace mxgate {
namespace {

void field(std::string* out, std::string_view key, std::string_view value) {
  out->append(key);
  out->push_back('\t');
  for (char c : value) out->push_back(c == '\t' || c == '\n' || c == '\r' ? ' ' : c);
  out->push_back('\n');
}

std::vector<std::string_view> splitTabs(std::string_view line) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t tab = line.find('\t', start);
    parts.push_back(line.substr(start, tab == std::string_view::npos ? line.npos : tab - start));
    if (tab == std::string_view::npos) return parts;
    start = tab + 1;
  }
}

}  // namespace

void putLe32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void putLe64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t getLe32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint64_t getLe64(const unsigned char* p) {
  return uint64_t(getLe32(p)) | uint64_t(getLe32(p + 4)) << 32;
}

std::string segmentHeader() {
  std::string h(kSegmentMagic, sizeof kSegmentMagic);
  putLe32(&h, kSegmentVersion);
  putLe32(&h, 0);
  return h;
}

std::string recordHeader(uint32_t meta_len, uint64_t body_len) {
  std::string h;
  h.reserve(kRecordHeaderSize);
  putLe32(&h, kRecordMagic);
  putLe32(&h, meta_len);
  putLe64(&h, body_len);
  return h;
}

std::string encodeMeta(const SpoolMeta& m) {
  std::string out;
  out.reserve(256);
  field(&out, "id", m.queue_id);
  field(&out, "received_ms", std::to_string(m.received_ms));
  field(&out, "client_ip", m.client_ip);
  field(&out, "client_name", m.client_name);
  field(&out, "helo", m.helo);
  field(&out, "protocol", m.protocol);
  if (!m.auth_user.empty()) field(&out, "auth", m.auth_user);
  field(&out, "from", m.envelope.mail_from);
  if (m.envelope.declared_size) field(&out, "size", std::to_string(m.envelope.declared_size));
  if (!m.envelope.body.empty()) field(&out, "body", m.envelope.body);
  if (m.envelope.smtputf8) field(&out, "smtputf8", "1");
  if (!m.envelope.ret.empty()) field(&out, "ret", m.envelope.ret);
  if (!m.envelope.envid.empty()) field(&out, "envid", m.envelope.envid);
  for (const Recipient& r : m.envelope.rcpts) {
    // Each subfield is cleaned on its own: a tab inside one would add a
    // column, and decodeMeta would then refuse the record (and readSegment
    // would stop at it, hiding every later record in the segment).
    out += "rcpt";
    for (const std::string* sub : {&r.address, &r.notify, &r.orcpt}) {
      out.push_back('\t');
      for (char c : *sub) out.push_back(c == '\t' || c == '\n' || c == '\r' ? ' ' : c);
    }
    out.push_back('\n');
  }
  field(&out, "action", m.action);
  char score[32];
  auto [end, ec] = std::to_chars(score, score + sizeof score, m.score, std::chars_format::fixed, 2);
  (void)ec;
  field(&out, "score", std::string_view(score, end - score));
  field(&out, "symbols", m.symbols);
  return out;
}

bool decodeMeta(std::string_view text, SpoolMeta* m) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return false;
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    auto parts = splitTabs(line);
    if (parts.size() < 2) return false;
    std::string_view k = parts[0];
    std::string v(parts[1]);
    if (k == "rcpt") {
      if (parts.size() != 4) return false;
      m->envelope.rcpts.push_back(
          Recipient{std::string(parts[1]), std::string(parts[2]), std::string(parts[3])});
    } else if (k == "id") {
      m->queue_id = v;
    } else if (k == "received_ms") {
      m->received_ms = std::strtoll(v.c_str(), nullptr, 10);
    } else if (k == "client_ip") {
      m->client_ip = v;
    } else if (k == "client_name") {
      m->client_name = v;
    } else if (k == "helo") {
      m->helo = v;
    } else if (k == "protocol") {
      m->protocol = v;
    } else if (k == "auth") {
      m->auth_user = v;
    } else if (k == "from") {
      m->envelope.mail_from = v;
    } else if (k == "size") {
      m->envelope.declared_size = std::strtoull(v.c_str(), nullptr, 10);
    } else if (k == "body") {
      m->envelope.body = v;
    } else if (k == "smtputf8") {
      m->envelope.smtputf8 = v == "1";
    } else if (k == "ret") {
      m->envelope.ret = v;
    } else if (k == "envid") {
      m->envelope.envid = v;
    } else if (k == "action") {
      m->action = v;
    } else if (k == "score") {
      m->score = std::strtod(v.c_str(), nullptr);
    } else if (k == "symbols") {
      m->symbols = v;
    }
    // Unknown keys are skipped so newer writers stay readable.
  }
  return !m->queue_id.empty();
}

const char* parseRecord(const unsigned char* r, uint64_t available, RecordParts* out) {
  if (available < kRecordHeaderSize + kRecordTrailerSize) return "torn record header";
  if (getLe32(r) != kRecordMagic) return "bad record magic";
  uint64_t meta_len = getLe32(r + 4);
  uint64_t body_len = getLe64(r + 8);
  uint64_t payload = kRecordHeaderSize + meta_len + body_len;
  if (body_len > available || payload + kRecordTrailerSize > available) return "torn record";
  uint32_t crc = static_cast<uint32_t>(crc32_z(0L, r, payload));
  if (getLe32(r + payload) != crc || getLe32(r + payload + 4) != kRecordEnd)
    return "record checksum mismatch";
  out->meta = std::string_view(reinterpret_cast<const char*>(r + kRecordHeaderSize), meta_len);
  out->body =
      std::string_view(reinterpret_cast<const char*>(r + kRecordHeaderSize + meta_len), body_len);
  out->size = payload + kRecordTrailerSize;
  return nullptr;
}

std::string readRecordAt(const std::string& path, uint64_t offset, SpoolMeta* meta,
                         std::string* body) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot open " + path + ": " + std::strerror(errno);
  auto readAt = [&](char* buf, size_t len, uint64_t at) {
    size_t done = 0;
    while (done < len) {
      ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(at + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  };
  std::string record(kRecordHeaderSize, '\0');
  std::string error;
  if (!readAt(record.data(), kRecordHeaderSize, offset)) {
    error = "no record header";
  } else {
    const auto* h = reinterpret_cast<const unsigned char*>(record.data());
    uint64_t total = kRecordHeaderSize + getLe32(h + 4) + getLe64(h + 8) + kRecordTrailerSize;
    if (getLe32(h) != kRecordMagic || total > (1ull << 40)) {
      error = "bad record magic";
    } else {
      record.resize(total);
      RecordParts parts;
      if (!readAt(record.data() + kRecordHeaderSize, total - kRecordHeaderSize,
                  offset + kRecordHeaderSize)) {
        error = "short record";
      } else if (const char* problem = parseRecord(
                     reinterpret_cast<const unsigned char*>(record.data()), total, &parts)) {
        error = problem;
      } else if (!decodeMeta(parts.meta, meta)) {
        error = "unreadable envelope";
      } else {
        body->assign(parts.body);
      }
    }
  }
  ::close(fd);
  return error.empty() ? error : error + " at " + path + ":" + std::to_string(offset);
}

SegmentReport readSegment(const std::string& path, uint64_t segment,
                          const std::function<bool(const SpoolRecordView&)>& fn) {
  SegmentReport rep;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    rep.problem = "cannot open: " + std::string(std::strerror(errno));
    return rep;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    rep.problem = "cannot stat: " + std::string(std::strerror(errno));
    ::close(fd);
    return rep;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kSegmentHeaderSize) {
    rep.trailing_bytes = size;
    rep.problem = size == 0 ? "" : "short segment header";
    ::close(fd);
    return rep;
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    rep.problem = "cannot map: " + std::string(std::strerror(errno));
    return rep;
  }
  const auto* base = static_cast<const unsigned char*>(map);
  if (std::memcmp(base, kSegmentMagic, sizeof kSegmentMagic) != 0 ||
      getLe32(base + 8) != kSegmentVersion) {
    rep.problem = "not a spool segment (bad magic or version)";
    munmap(map, size);
    return rep;
  }
  uint64_t pos = kSegmentHeaderSize;
  rep.valid_bytes = pos;
  while (pos < size) {
    RecordParts parts;
    if (const char* problem = parseRecord(base + pos, size - pos, &parts)) {
      rep.problem = problem;
      break;
    }
    SpoolRecordView view;
    view.segment = segment;
    view.offset = pos;
    view.body = parts.body;
    pos += parts.size;
    rep.valid_bytes = pos;
    // A checksummed record is framed correctly even if its envelope cannot
    // be read (a newer writer, a bug): report it, but keep reading, so one
    // bad envelope never hides the records after it.
    if (!decodeMeta(parts.meta, &view.meta)) {
      ++rep.unreadable;
      rep.problem = "unreadable envelope at offset " + std::to_string(view.offset);
      continue;
    }
    ++rep.records;
    if (!fn(view)) {
      munmap(map, size);
      return rep;
    }
  }
  rep.trailing_bytes = size - rep.valid_bytes;
  munmap(map, size);
  return rep;
}

std::string segmentPath(const std::string& dir, uint64_t n) {
  char name[32];
  std::snprintf(name, sizeof name, "seg-%016llx.dat", static_cast<unsigned long long>(n));
  return dir + "/" + name;
}

std::vector<std::pair<uint64_t, std::string>> listSegments(const std::string& dir) {
  std::vector<std::pair<uint64_t, std::string>> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    // seg-<16 hex digits>.dat
    if (name.size() != 24 || name.rfind("seg-", 0) != 0 || name.substr(20) != ".dat") continue;
    uint64_t n = 0;
    auto [p, e] = std::from_chars(name.data() + 4, name.data() + 20, n, 16);
    if (e != std::errc() || p != name.data() + 20) continue;
    out.emplace_back(n, entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace mxgate
