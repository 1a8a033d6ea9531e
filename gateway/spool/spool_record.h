// The spool's on-disk record format (docs/spool-format.md).
//
// A segment file is a 16-byte header followed by records appended in order:
//   u32 magic "MXR1" | u32 meta_len | u64 body_len | meta | body | u32 crc32 | u32 "MXE1"
// little-endian; crc32 (zlib) covers every byte before it in the record.
// A record is complete only with a matching checksum and end marker. Records
// are only appended and a batch is synced before any of it is acknowledged,
// so the first incomplete record in a segment marks the end of what was ever
// acknowledged there: the reader stops at it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/pipeline/types.h"

namespace mxgate {

inline constexpr char kSegmentMagic[8] = {'M', 'X', 'G', 'S', 'P', 'O', 'O', 'L'};
inline constexpr uint32_t kSegmentVersion = 1;
inline constexpr size_t kSegmentHeaderSize = 16;
inline constexpr uint32_t kRecordMagic = 0x3152584d;  // "MXR1"
inline constexpr uint32_t kRecordEnd = 0x3145584d;    // "MXE1"
inline constexpr size_t kRecordHeaderSize = 16;
inline constexpr size_t kRecordTrailerSize = 8;

// What the spool keeps about a message besides its bytes.
struct SpoolMeta {
  std::string queue_id;
  int64_t received_ms = 0;  // Unix time in milliseconds
  std::string client_ip;
  std::string client_name;
  std::string helo;
  std::string protocol;  // SMTP, ESMTP, ESMTPS
  std::string auth_user;
  Envelope envelope;
  std::string action;  // the policy action, e.g. "accept", "quarantine"
  double score = 0;
  std::string symbols;  // "NAME(weight) ..." as logged
};

// Text form: one "key\tvalue" line per field, "rcpt\taddr\tnotify\torcpt" per
// recipient. Values never contain tabs or line ends (they are replaced by spaces).
std::string encodeMeta(const SpoolMeta& meta);
bool decodeMeta(std::string_view text, SpoolMeta* meta);

std::string segmentHeader();
std::string recordHeader(uint32_t meta_len, uint64_t body_len);
void putLe32(std::string* out, uint32_t v);
void putLe64(std::string* out, uint64_t v);
uint32_t getLe32(const unsigned char* p);
uint64_t getLe64(const unsigned char* p);

// One record found while reading a segment.
struct SpoolRecordView {
  uint64_t segment = 0;
  uint64_t offset = 0;  // of the record in the segment
  SpoolMeta meta;
  std::string_view body;  // valid only during the callback
};

struct SegmentReport {
  uint64_t records = 0;
  uint64_t unreadable = 0;   // complete records whose envelope could not be decoded
  uint64_t valid_bytes = 0;  // end of the last complete record
  uint64_t trailing_bytes =
      0;  // bytes after it (an unacknowledged torn write); 0 if the caller stopped early
  std::string problem;  // why reading stopped early, if it did
};

// A complete record's parts, as slices of the bytes given to parseRecord.
struct RecordParts {
  std::string_view meta;
  std::string_view body;
  uint64_t size = 0;  // the whole record, header to end marker
};
// Checks the record at r (available bytes from there on): framing, checksum
// and end marker. Returns nullptr and fills out, or the reason it is not complete.
const char* parseRecord(const unsigned char* r, uint64_t available, RecordParts* out);

// Reads the one record at offset in a segment file (pread, no mapping).
// Returns "" or what is wrong, naming the file and offset.
std::string readRecordAt(const std::string& path, uint64_t offset, SpoolMeta* meta,
                         std::string* body);

// Reads one segment file; calls fn for every complete record until fn returns false.
SegmentReport readSegment(const std::string& path, uint64_t segment,
                          const std::function<bool(const SpoolRecordView&)>& fn);

// The file of segment n in dir: dir/seg-<16 hex digits>.dat.
std::string segmentPath(const std::string& dir, uint64_t n);
// Segment files in dir, ascending: (number, path).
std::vector<std::pair<uint64_t, std::string>> listSegments(const std::string& dir);

}  // namespace mxgate
