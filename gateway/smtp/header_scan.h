// A minimal scan of a message's header section: enough for the SMTP layer
// (hop counting, the Subject tag). The full MIME view lives elsewhere.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

namespace mxgate::smtp {

struct HeaderField {
  std::string_view name;    // as written, without the colon
  std::string_view value;   // raw, folded, without the final CRLF
  size_t value_offset = 0;  // offset of value in the message
  size_t offset = 0;        // offset of the field (its name) in the message
  size_t end = 0;           // offset just past the field's final line end
};

// Visits header fields in order until fn returns false or the header section
// ends (empty line, end of message, or a line that is not a header field).
// Returns the offset where the body starts (after the blank line), or the
// message size if there is no body.
size_t scanHeaders(std::string_view message, const std::function<bool(const HeaderField&)>& fn);

// Case-insensitive count of fields with the given name.
size_t countHeader(std::string_view message, std::string_view name);

}  // namespace mxgate::smtp
