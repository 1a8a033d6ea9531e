#include "gateway/pipeline/filter.h"

#include <spdlog/spdlog.h>

#include "gateway/pipeline/symbol_table.h"

namespace mxgate {

const char* stageName(Stage s) {
  switch (s) {
    case Stage::kConnect:
      return "connect";
    case Stage::kHelo:
      return "helo";
    case Stage::kMail:
      return "mail";
    case Stage::kRcpt:
      return "rcpt";
    case Stage::kData:
      return "data";
  }
  return "?";
}

bool parseStage(std::string_view name, Stage* out) {
  for (int i = 0; i < kStageCount; ++i) {
    if (name == stageName(static_cast<Stage>(i))) {
      *out = static_cast<Stage>(i);
      return true;
    }
  }
  return false;
}

void FilterContext::addSymbol(std::string_view name, std::string detail) {
  const SymbolInfo* info = symbols_.find(name);
  if (info == nullptr) {
    spdlog::warn("filter {} added undeclared symbol {}; it weighs 0", filter_, name);
  }
  result_.addHit(SymbolHit{std::string(name), info ? info->weight : 0.0, std::move(detail),
                           std::string(filter_)});
}

}  // namespace mxgate
