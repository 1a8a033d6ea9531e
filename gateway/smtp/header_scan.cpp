#include "gateway/smtp/header_scan.h"

#include <strings.h>

namespace mxgate::smtp {

size_t scanHeaders(std::string_view m, const std::function<bool(const HeaderField&)>& fn) {
  size_t pos = 0;
  while (pos < m.size()) {
    if (m.compare(pos, 2, "\r\n") == 0) return pos + 2;
    if (m[pos] == '\n') return pos + 1;
    size_t colon = pos;
    while (colon < m.size() && m[colon] != ':' && m[colon] != '\r' && m[colon] != '\n' &&
           m[colon] != ' ' && m[colon] != '\t')
      ++colon;
    if (colon >= m.size() || m[colon] != ':' || colon == pos) return pos;  // not a header line
    // The field runs until a line end not followed by whitespace (folding).
    size_t end = colon + 1;
    while (true) {
      size_t nl = m.find('\n', end);
      if (nl == std::string_view::npos) {
        end = m.size();
        break;
      }
      if (nl + 1 < m.size() && (m[nl + 1] == ' ' || m[nl + 1] == '\t')) {
        end = nl + 1;
        continue;
      }
      end = nl + 1;
      break;
    }
    size_t value_end = end;
    if (value_end > colon && m[value_end - 1] == '\n') --value_end;
    if (value_end > colon && m[value_end - 1] == '\r') --value_end;
    HeaderField f{m.substr(pos, colon - pos), m.substr(colon + 1, value_end - colon - 1), colon + 1,
                  pos, end};
    if (!fn(f)) return end;
    pos = end;
  }
  return m.size();
}

size_t countHeader(std::string_view message, std::string_view name) {
  size_t n = 0;
  scanHeaders(message, [&](const HeaderField& f) {
    if (f.name.size() == name.size() && strncasecmp(f.name.data(), name.data(), name.size()) == 0)
      ++n;
    return true;
  });
  return n;
}

}  // namespace mxgate::smtp
