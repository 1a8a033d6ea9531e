// ASCII case helpers. Mail syntax is case-insensitive only in ASCII
// (RFC 5321 2.4); bytes >= 0x80 (SMTPUTF8) are compared exactly.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace mxgate {

inline char asciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = asciiLower(c);
  return out;
}

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return asciiLower(x) == asciiLower(y);
         });
}

}  // namespace mxgate
