// The seam under Resolver: something that answers one DNS question.
#pragma once

#include <functional>
#include <string>

#include "gateway/dns/dns_types.h"

namespace mxgate {

class DnsBackend {
 public:
  using Callback = std::function<void(DnsAnswer)>;

  virtual ~DnsBackend() = default;

  // Starts one query. name is lowercased, without a trailing dot.
  // done is called exactly once, on any thread, possibly inline before
  // query() returns; it is never called after the backend is destroyed.
  // The caller holds no lock while calling query().
  virtual void query(const std::string& name, RecordType type, Callback done) = 0;
};

}  // namespace mxgate
