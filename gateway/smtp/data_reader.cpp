#include "gateway/smtp/data_reader.h"

#include <cstring>

namespace mxgate::smtp {

void DataReader::emit(std::string_view bytes) {
  content_size_ += bytes.size();
  if (oversize_) return;
  if (max_size_ != 0 && out_->size() + bytes.size() > max_size_) {
    oversize_ = true;
    return;
  }
  out_->append(bytes);
}

void DataReader::bareCr() {
  // Kept as content so the scan stays in step; the message is refused.
  bare_cr_ = true;
  emitChar('\r');
  state_ = State::kMid;
}

void DataReader::bareLf() {
  bare_lf_ = true;
  if (mode_ == BareNewline::kNormalize) {
    emit("\r\n");
    state_ = State::kLooseStart;
  } else {
    // Kept as content so the scan stays in step; the message is refused.
    emitChar('\n');
    state_ = State::kMid;
  }
}

size_t DataReader::feed(std::string_view input) {
  const char* p = input.data();
  const char* end = p + input.size();
  while (p < end && state_ != State::kDone) {
    switch (state_) {
      case State::kMid: {
        // Fast path: copy up to the next CR or LF in one append.
        const char* q = p;
        while (q < end && *q != '\r' && *q != '\n') ++q;
        if (q > p) emit(std::string_view(p, static_cast<size_t>(q - p)));
        p = q;
        if (p == end) break;
        if (*p == '\r') {
          state_ = State::kCr;
        } else {
          bareLf();
        }
        ++p;
        break;
      }
      case State::kCr:
        if (*p == '\n') {
          emit("\r\n");
          state_ = State::kLineStart;
          ++p;
        } else {
          bareCr();  // *p is re-examined mid-line
        }
        break;
      case State::kLineStart:
      case State::kLooseStart:
        if (*p == '.') {
          state_ = state_ == State::kLineStart ? State::kDot : State::kLooseDot;
          ++p;
        } else {
          state_ = State::kMid;
        }
        break;
      case State::kDot:
        if (*p == '\r') {
          state_ = State::kDotCr;
          ++p;
        } else {
          // Stuffed dot: dropped; the character is re-examined mid-line. A
          // dot followed by a bare LF is a one-dot line that did not end data.
          if (*p == '\n') emitChar('.');
          state_ = State::kMid;
        }
        break;
      case State::kDotCr:
        if (*p == '\n') {
          state_ = State::kDone;
          ++p;
        } else {
          // ".\r" + something else: the dot was a stuffed dot and the CR is bare.
          bareCr();
        }
        break;
      case State::kLooseDot:
        // A line begun by a bare LF never ends the data. "." alone is kept as
        // content; a longer line is unstuffed as usual.
        if (*p == '\r' || *p == '\n') emitChar('.');
        state_ = State::kMid;
        break;
      case State::kDone:
        break;
    }
  }
  return static_cast<size_t>(p - input.data());
}

}  // namespace mxgate::smtp
