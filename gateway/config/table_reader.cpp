#include "gateway/config/table_reader.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>

namespace mxgate {
namespace {

const toml::value kEmpty{};

uint32_t lineOf(const toml::value& v) {
  return static_cast<uint32_t>(v.location().line());
}

std::string typeName(toml::value_t t) {
  switch (t) {
    case toml::value_t::boolean:
      return "a boolean";
    case toml::value_t::integer:
      return "an integer";
    case toml::value_t::floating:
      return "a number";
    case toml::value_t::string:
      return "a string";
    case toml::value_t::array:
      return "an array";
    case toml::value_t::table:
      return "a table";
    case toml::value_t::empty:
      return "nothing";
    default:
      return "a date/time";
  }
}

}  // namespace

TableReader::TableReader(const toml::value& table, std::string path)
    : table_(&table), path_(std::move(path)) {
  if (table.is_uninitialized()) return;
  file_ = table.location().file_name();
  line_ = lineOf(table);
}

const toml::value* TableReader::find(std::string_view key) const {
  if (!table_->is_table()) return nullptr;
  const auto& t = table_->as_table();
  auto it = t.find(std::string(key));
  return it == t.end() ? nullptr : &it->second;
}

bool TableReader::has(std::string_view key) const {
  return find(key) != nullptr;
}

std::pair<std::string, uint32_t> TableReader::where(std::string_view key) const {
  if (const toml::value* v = find(key)) return {v->location().file_name(), lineOf(*v)};
  return {file_.empty() ? std::string("config") : file_, line_};
}

void TableReader::fail(std::string_view key, const std::string& message) const {
  auto [file, line] = where(key);
  std::string name = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  throw ConfigError(file, line, name + ": " + message);
}

const toml::value& TableReader::need(std::string_view key, toml::value_t type,
                                     const char* type_name) {
  known_.emplace(key);
  const toml::value* v = find(key);
  if (v->type() != type)
    fail(key, std::string("must be ") + type_name + ", not " + typeName(v->type()));
  return *v;
}

std::string TableReader::getString(std::string_view key, std::string def) {
  known_.emplace(key);
  if (!has(key)) return def;
  return need(key, toml::value_t::string, "a string").as_string().str;
}

bool TableReader::getBool(std::string_view key, bool def) {
  known_.emplace(key);
  if (!has(key)) return def;
  return need(key, toml::value_t::boolean, "true or false").as_boolean();
}

int64_t TableReader::getInt(std::string_view key, int64_t def, int64_t min, int64_t max) {
  known_.emplace(key);
  if (!has(key)) return def;
  int64_t v = need(key, toml::value_t::integer, "an integer").as_integer();
  if (v < min || v > max)
    fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", not " +
                  std::to_string(v));
  return v;
}

double TableReader::getDouble(std::string_view key, double def) {
  known_.emplace(key);
  const toml::value* v = find(key);
  if (v == nullptr) return def;
  if (v->is_integer()) return static_cast<double>(v->as_integer());
  return need(key, toml::value_t::floating, "a number").as_floating();
}

std::chrono::milliseconds TableReader::getDuration(std::string_view key,
                                                   std::chrono::milliseconds def) {
  known_.emplace(key);
  const toml::value* v = find(key);
  if (v == nullptr) return def;
  if (v->is_integer()) {
    if (v->as_integer() < 0) fail(key, "must not be negative");
    return std::chrono::seconds(v->as_integer());
  }
  if (!v->is_string()) fail(key, "must be a duration such as \"90s\", \"5m\", \"36d\"");
  auto d = parseDuration(v->as_string().str);
  if (!d)
    fail(key,
         "\"" + v->as_string().str + "\" is not a duration (use e.g. 250ms, 90s, 5m, 6h, 36d)");
  return *d;
}

uint64_t TableReader::getSize(std::string_view key, uint64_t def) {
  known_.emplace(key);
  const toml::value* v = find(key);
  if (v == nullptr) return def;
  if (v->is_integer()) {
    if (v->as_integer() < 0) fail(key, "must not be negative");
    return static_cast<uint64_t>(v->as_integer());
  }
  if (!v->is_string()) fail(key, "must be a size such as \"30M\" or a number of bytes");
  auto s = parseSize(v->as_string().str);
  if (!s) fail(key, "\"" + v->as_string().str + "\" is not a size (use e.g. 512K, 30M, 1G)");
  return *s;
}

std::vector<std::string> TableReader::getStringList(std::string_view key,
                                                    std::vector<std::string> def) {
  known_.emplace(key);
  if (!has(key)) return def;
  const auto& arr = need(key, toml::value_t::array, "an array of strings").as_array();
  std::vector<std::string> out;
  out.reserve(arr.size());
  for (const auto& item : arr) {
    if (!item.is_string()) {
      throw ConfigError(item.location().file_name(), lineOf(item),
                        (path_.empty() ? "" : path_ + ".") + std::string(key) +
                            ": every element must be a string, not " + typeName(item.type()));
    }
    out.push_back(item.as_string().str);
  }
  return out;
}

TableReader TableReader::getTable(std::string_view key) {
  known_.emplace(key);
  std::string sub = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  if (!has(key)) {
    TableReader r(kEmpty, sub);
    r.file_ = file_;
    r.line_ = line_;
    return r;
  }
  return TableReader(need(key, toml::value_t::table, "a table"), sub);
}

std::vector<TableReader> TableReader::getTableArray(std::string_view key) {
  known_.emplace(key);
  std::vector<TableReader> out;
  if (!has(key)) return out;
  std::string sub = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  const auto& arr = need(key, toml::value_t::array, "an array of tables ([[...]])").as_array();
  for (const auto& item : arr) {
    if (!item.is_table())
      throw ConfigError(item.location().file_name(), lineOf(item), sub + ": must be a table");
    out.emplace_back(item, sub);
  }
  return out;
}

std::vector<std::string> TableReader::keys() {
  std::vector<std::string> out;
  if (!table_->is_table()) return out;
  for (const auto& [k, v] : table_->as_table()) {
    known_.insert(k);
    out.push_back(k);
  }
  std::sort(out.begin(), out.end());
  return out;
}

const toml::value& TableReader::raw(std::string_view key) {
  known_.emplace(key);
  const toml::value* v = find(key);
  return v ? *v : kEmpty;
}

void TableReader::finish() const {
  if (!table_->is_table()) return;
  // Report the unknown key that comes first in the file, so repeated runs
  // walk an admin through the mistakes in order.
  const toml::value* first = nullptr;
  std::string first_key;
  for (const auto& [k, v] : table_->as_table()) {
    if (known_.count(k)) continue;
    if (first == nullptr || lineOf(v) < lineOf(*first)) {
      first = &v;
      first_key = k;
    }
  }
  if (first != nullptr) fail(first_key, "unknown setting");
}

toml::value parseTomlFile(const std::string& file) {
  try {
    return toml::parse(file);
  } catch (const toml::syntax_error& e) {
    // toml11's message spans several lines with a source excerpt; keep its
    // first line as the reason and put file:line in front like every other error.
    std::string what = e.what();
    auto nl = what.find('\n');
    std::string reason = what.substr(0, nl);
    if (reason.rfind("[error] ", 0) == 0) reason = reason.substr(8);
    throw ConfigError(file, static_cast<uint32_t>(e.location().line()), "syntax error: " + reason);
  } catch (const std::runtime_error& e) {
    // toml11 reports an unreadable file as "file open error -> path".
    std::string what = e.what();
    if (what.find("file open error") != std::string::npos)
      throw ConfigError(file, 0, std::string("cannot read the file: ") + std::strerror(errno));
    throw ConfigError(file, 0, what);
  }
}

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p == text.data()) return std::nullopt;
  std::string_view unit(p, text.data() + text.size() - p);
  uint64_t ms;
  if (unit == "ms") {
    ms = 1;
  } else if (unit.empty() || unit == "s") {
    ms = 1000;
  } else if (unit == "m") {
    ms = 60'000;
  } else if (unit == "h") {
    ms = 3'600'000;
  } else if (unit == "d") {
    ms = 86'400'000;
  } else if (unit == "w") {
    ms = 7 * 86'400'000ull;
  } else {
    return std::nullopt;
  }
  if (n > std::numeric_limits<int64_t>::max() / ms) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(n * ms));
}

std::optional<uint64_t> parseSize(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p == text.data()) return std::nullopt;
  std::string_view unit(p, text.data() + text.size() - p);
  uint64_t mult;
  if (unit.empty() || unit == "B") {
    mult = 1;
  } else if (unit == "K" || unit == "k" || unit == "KB" || unit == "KiB") {
    mult = 1ull << 10;
  } else if (unit == "M" || unit == "MB" || unit == "MiB") {
    mult = 1ull << 20;
  } else if (unit == "G" || unit == "GB" || unit == "GiB") {
    mult = 1ull << 30;
  } else {
    return std::nullopt;
  }
  if (n > std::numeric_limits<uint64_t>::max() / mult) return std::nullopt;
  return n * mult;
}

}  // namespace mxgate
