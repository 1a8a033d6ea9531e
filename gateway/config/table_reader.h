// Typed, validated access to one TOML table.
//
// Every getter records the key as known; finish() then rejects any key the
// caller never asked for, so a typo in mxgate.toml is an error with file:line
// instead of a silently ignored setting. Values out of range fail the same way.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <toml.hpp>

#include "gateway/config/config_error.h"

namespace mxgate {

class TableReader {
 public:
  // REQUIRES: table is a TOML table (or an empty value meaning "absent").
  // path names the table in messages, e.g. "filters.lists".
  TableReader(const toml::value& table, std::string path);

  bool has(std::string_view key) const;

  std::string getString(std::string_view key, std::string def);
  bool getBool(std::string_view key, bool def);
  int64_t getInt(std::string_view key, int64_t def, int64_t min, int64_t max);
  double getDouble(std::string_view key, double def);
  // "90s", "5m", "36d", "250ms" or a bare number of seconds.
  std::chrono::milliseconds getDuration(std::string_view key, std::chrono::milliseconds def);
  // "30M", "512K", "1G" (powers of 1024) or a bare number of bytes.
  uint64_t getSize(std::string_view key, uint64_t def);
  std::vector<std::string> getStringList(std::string_view key, std::vector<std::string> def);
  // Absent key: an empty reader whose finish() accepts nothing.
  TableReader getTable(std::string_view key);
  // An array of tables ([[name]] sections).
  std::vector<TableReader> getTableArray(std::string_view key);
  // Keys of a table whose keys are data (e.g. [symbols]); marks all as known.
  std::vector<std::string> keys();
  // The raw value of a key, for callers with their own types. Marks it known.
  const toml::value& raw(std::string_view key);

  // Throws ConfigError at the key's line (or the table's, if absent).
  [[noreturn]] void fail(std::string_view key, const std::string& message) const;
  // Throws ConfigError for the first key no getter asked for.
  void finish() const;

  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }
  uint32_t line() const { return line_; }
  // File and line of a key (or of the table when the key is absent).
  std::pair<std::string, uint32_t> where(std::string_view key) const;

 private:
  const toml::value* find(std::string_view key) const;
  const toml::value& need(std::string_view key, toml::value_t type, const char* type_name);

  const toml::value* table_;
  std::string path_;
  std::string file_;
  uint32_t line_ = 0;
  std::set<std::string, std::less<>> known_;
};

// Parses a file; syntax errors become ConfigError with file:line.
toml::value parseTomlFile(const std::string& file);

// Shared parsers for duration and size strings; nullopt when malformed.
std::optional<std::chrono::milliseconds> parseDuration(std::string_view text);
std::optional<uint64_t> parseSize(std::string_view text);

}  // namespace mxgate
