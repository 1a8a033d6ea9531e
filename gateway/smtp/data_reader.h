// The DATA phase reader (RFC 5321 4.1.1.4, 4.5.2).
//
// Invariants, which the SMTP smuggling defence rests on:
//  - The message ends only on <CRLF>.<CRLF>, where the CRLF before the dot is
//    a real CR LF pair ending the previous line (or the DATA command itself).
//  - A bare LF or bare CR never starts or ends that sequence. In kReject mode
//    any bare LF or CR marks the message for refusal; in kNormalize mode a bare
//    LF is stored as a line end (CRLF) but a line reached through it can still
//    never end the data. A bare CR is refused in both modes.
//  - Dot-unstuffing is exact: a leading dot is removed from any line that has
//    more characters after it.
//  - Output stops growing at max_size; the reader keeps consuming to the end
//    of data so the session stays in sync, and reports oversize.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mxgate::smtp {

enum class BareNewline { kReject, kNormalize };

class DataReader {
 public:
  DataReader(std::string* out, uint64_t max_size, BareNewline mode)
      : out_(out), max_size_(max_size), mode_(mode) {}

  // Consumes input up to and including the end-of-data sequence. Returns the
  // number of bytes consumed; done() tells whether the end was reached (the
  // rest of the input then belongs to the next command).
  size_t feed(std::string_view input);

  bool done() const { return state_ == State::kDone; }
  bool sawBareLf() const { return bare_lf_; }
  bool sawBareCr() const { return bare_cr_; }
  bool oversize() const { return oversize_; }
  // Bytes of message content seen (after unstuffing), including any not
  // stored because of the size limit.
  uint64_t contentSize() const { return content_size_; }

 private:
  enum class State {
    kLineStart,   // after CRLF: a dot here may begin the end sequence
    kLooseStart,  // after a bare LF (normalize mode): a dot here never ends
    kMid,         // inside a line
    kCr,          // saw CR inside a line
    kDot,         // saw '.' at kLineStart
    kDotCr,       // saw ".\r" at kLineStart
    kLooseDot,    // saw '.' at kLooseStart
    kDone,
  };

  void emit(std::string_view bytes);
  void emitChar(char c) { emit(std::string_view(&c, 1)); }
  void bareLf();
  void bareCr();

  std::string* out_;
  uint64_t max_size_;
  BareNewline mode_;
  State state_ = State::kLineStart;
  bool bare_lf_ = false;
  bool bare_cr_ = false;
  bool oversize_ = false;
  uint64_t content_size_ = 0;
};

}  // namespace mxgate::smtp
