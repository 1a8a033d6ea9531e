#include "gateway/pipeline/symbol_table.h"

namespace mxgate {

bool SymbolTable::declare(const std::string& name, const SymbolInfo& info) {
  return symbols_.emplace(name, info).second;
}

bool SymbolTable::setWeight(std::string_view name, double weight) {
  auto it = symbols_.find(std::string(name));
  if (it == symbols_.end()) return false;
  it->second.weight = weight;
  return true;
}

const SymbolInfo* SymbolTable::find(std::string_view name) const {
  auto it = symbols_.find(std::string(name));
  return it == symbols_.end() ? nullptr : &it->second;
}

}  // namespace mxgate
