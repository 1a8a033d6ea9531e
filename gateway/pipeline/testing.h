// Test helpers for filters: run one stage synchronously on a private loop.
#pragma once

#include <exception>
#include <optional>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "gateway/pipeline/filter.h"

namespace mxgate::testing {

inline StageResult runCheck(Filter& filter, Stage stage, FilterContext& ctx) {
  asio::io_context io;
  std::optional<StageResult> out;
  std::exception_ptr error;
  asio::co_spawn(io, filter.check(stage, ctx), [&](std::exception_ptr e, StageResult r) {
    error = e;
    out = std::move(r);
  });
  io.run();
  if (error) std::rethrow_exception(error);
  return *out;
}

}  // namespace mxgate::testing
