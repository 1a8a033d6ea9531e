// The DATA writer's transformation (RFC 5321 4.1.1.4, 4.5.2): message bytes
// in, wire bytes out, streaming over any number of slices.
//
// Invariants of the output, which keep a relay from passing on an SMTP
// smuggling attempt (end-of-DATA look-alikes such as "\n.\n" or "\r.\r\n"):
//  - every CR and every LF is part of a CR LF pair: a bare LF or bare CR
//    (also the first CR of "\r\r\n") becomes CR LF;
//  - a line whose first byte is '.' gets one more '.' in front;
//  - NUL bytes are dropped: neither RFC 5322 nor 8BITMIME allows them, and a
//    server that drops them itself could otherwise read "\r\n\0.\r\n" as the
//    end of data. A dropped NUL does not count as a line's first byte;
//  - finish() ends the last line if needed and appends ".\r\n", so the whole
//    output ends with exactly one "\r\n.\r\n" and contains it nowhere else.
#pragma once

#include <string>
#include <string_view>

namespace mxgate::smtp_client {

class DataEncoder {
 public:
  // Appends the wire form of in to out (out grows by at most 2 * in.size()).
  void encode(std::string_view in, std::string* out);
  // Ends the data: appends the final line end if needed and ".\r\n".
  void finish(std::string* out);

 private:
  bool line_start_ = true;   // the next byte begins a line
  bool cr_pending_ = false;  // a CR was seen; whether LF follows is not known yet
};

}  // namespace mxgate::smtp_client
