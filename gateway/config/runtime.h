// Everything built from one configuration load: the settings, the filter
// pipeline, the symbol weights and the AUTH users. Immutable once built and shared by
// sessions through shared_ptr, so a reload swaps it atomically while
// in-flight sessions finish with the one they started with.
#pragma once

#include <memory>
#include <string>

#include "gateway/config/config.h"
#include "gateway/pipeline/pipeline.h"
#include "gateway/pipeline/symbol_table.h"

namespace mxgate {

class KvStore;
class Resolver;
class UserDb;

struct Runtime {
  Config config;
  SymbolTable symbols;
  Pipeline pipeline;
  // The submission users file; null when AUTH is off everywhere.
  std::shared_ptr<const UserDb> users;
};

// Loads and validates everything. Throws ConfigError (file:line: message).
// deps holds the daemon's shared services; when only validating
// (--check-config) they are null, and filters must not use them at build time.
std::shared_ptr<const Runtime> loadRuntime(const std::string& file, const FilterDeps& deps = {});

// Only the [server]/[smtp]/... settings, without building filters.
Config loadConfig(const std::string& file);

}  // namespace mxgate
