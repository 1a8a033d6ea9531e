// Symbol weights: declared defaults from filter specs, overridden by [symbols].
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

namespace mxgate {

struct SymbolInfo {
  double weight = 0;
  std::string description;
  std::string filter;  // the filter that declared it
};

class SymbolTable {
 public:
  // Returns false if the symbol is declared already (by another filter).
  bool declare(const std::string& name, const SymbolInfo& info);
  // REQUIRES: the symbol is declared. Returns false otherwise.
  bool setWeight(std::string_view name, double weight);
  const SymbolInfo* find(std::string_view name) const;
  const std::unordered_map<std::string, SymbolInfo>& all() const { return symbols_; }

 private:
  std::unordered_map<std::string, SymbolInfo> symbols_;
};

}  // namespace mxgate
