#include "gateway/smtp_client/data_encoder.h"

#include <array>

namespace mxgate::smtp_client {

namespace {

constexpr std::array<bool, 256> makeSpecial() {
  std::array<bool, 256> t{};
  t['\r'] = t['\n'] = t['\0'] = true;
  return t;
}
constexpr std::array<bool, 256> kSpecial = makeSpecial();

}  // namespace

void DataEncoder::encode(std::string_view in, std::string* out) {
  const char* p = in.data();
  const char* end = p + in.size();
  while (p < end) {
    const char c = *p;
    if (c == '\n') {
      // CR LF, or a bare LF: both end the line as CR LF.
      out->append("\r\n", 2);
      cr_pending_ = false;
      line_start_ = true;
      ++p;
      continue;
    }
    if (c == '\0') {
      ++p;
      continue;
    }
    if (cr_pending_) {
      // The pending CR was bare (not followed by LF): end the line there.
      out->append("\r\n", 2);
      cr_pending_ = false;
      line_start_ = true;
    }
    if (c == '\r') {
      cr_pending_ = true;
      ++p;
      continue;
    }
    if (line_start_ && c == '.') out->push_back('.');
    line_start_ = false;
    const char* run = p;
    while (p < end && !kSpecial[static_cast<unsigned char>(*p)]) ++p;
    out->append(run, static_cast<size_t>(p - run));
  }
}

void DataEncoder::finish(std::string* out) {
  if (cr_pending_ || !line_start_) out->append("\r\n", 2);
  out->append(".\r\n", 3);
  cr_pending_ = false;
  line_start_ = true;
}

}  // namespace mxgate::smtp_client
