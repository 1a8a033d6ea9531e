// Envelope sender patterns for the allow/deny lists.
//
// Forms (matched case-insensitively, ASCII only):
//   user@example.com      that address
//   *@example.com         any local part at exactly example.com
//   example.com           the same as *@example.com
//   *.gov, *@*.gov        any domain ending in .gov (not gov itself)
//   bounce-*@lists.org    a glob: '*' matches any run of characters
//
// Lookups cost a few hash probes per sender whatever the list size; only true
// globs are scanned one by one.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mxgate {

class SenderPatternSet {
 public:
  // Adds a pattern. Returns false and sets *error for an invalid one (empty,
  // spaces, angle brackets, more than one @, "**", an empty part or label).
  bool add(std::string_view pattern, std::string* error);
  // The pattern (as written) that sender matches, or nullptr. The null sender
  // (empty) matches nothing.
  const std::string* match(std::string_view sender) const;
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  using Table = std::unordered_map<std::string, std::string, Hash, std::equal_to<>>;
  struct Glob {
    std::string pattern;  // lowercased
    bool whole_address;   // else matched against the domain only
    std::string entry;    // as written
  };

  void addDomain(std::string_view domain, std::string_view entry);

  Table addresses_;  // lowercased address -> entry
  Table domains_;    // exact domain -> entry
  Table suffixes_;   // "gov" for "*.gov" -> entry
  std::vector<Glob> globs_;
  size_t size_ = 0;
};

// '*' matches any run of characters (including none); everything else matches
// itself. Iterative, so the cost is at most pattern length x text length.
bool globMatch(std::string_view pattern, std::string_view text);

}  // namespace mxgate
