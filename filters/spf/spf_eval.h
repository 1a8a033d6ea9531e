// SPF evaluation (RFC 7208 check_host()) with libspf2 over the shared resolver.
//
// libspf2 asks its DNS layer synchronously. Here that layer answers only from
// answers already known to this evaluation (or fresh in the resolver's
// cache); a question it cannot answer is noted as a miss and answered
// TRY_AGAIN. After a pass with misses, the misses are resolved
// asynchronously through the shared Resolver and libspf2 runs again from the
// start. A pass without misses is the real evaluation: every answer it saw
// is the one DNS gave. So the event loop never blocks, no thread waits on
// DNS, and cancellation (the pipeline's filter timeout) just stops the
// coroutine. The number of passes is bounded because each one learns at
// least one new answer and the processing limits bound the questions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <asio/awaitable.hpp>
#include <asio/ip/address.hpp>

namespace mxgate {

class Resolver;

enum class SpfResult : uint8_t {
  kNone,
  kNeutral,
  kPass,
  kFail,
  kSoftfail,
  kTemperror,
  kPermerror,
};

// The RFC 7208 / RFC 8601 word: "none", "pass", ..., "permerror".
std::string_view spfResultName(SpfResult r);

struct SpfRequest {
  asio::ip::address client_ip;
  std::string helo;
  // The MAIL FROM address (without <>). Empty: the HELO identity is checked,
  // as "postmaster@<helo>" (RFC 7208 2.3, 2.4).
  std::string mail_from;
  std::string receiver;  // %{r}: our host name
};

struct SpfLimits {
  int dns_terms = 10;    // RFC 7208 4.6.4: include, a, mx, ptr, exists, redirect
  int void_lookups = 2;  // RFC 7208 4.6.4: answers with no records
  // Upper bound on libspf2 passes; each pass past the first follows new
  // answers. Reaching it gives temperror (it cannot with sane records).
  int max_passes = 40;
};

struct SpfVerdict {
  SpfResult result = SpfResult::kNone;
  std::string domain;       // the domain checked (the identity's)
  std::string sender;       // the address checked ("postmaster@helo" for <>)
  std::string mechanism;    // "default" when no mechanism matched, else empty
  std::string problem;      // for permerror / temperror: what went wrong
  std::string explanation;  // for fail: the exp= text (or the local default)
  std::string comment;      // a one-line human summary
  int passes = 0;           // libspf2 runs it took
};

// Evaluates SPF for the request. Completes on the caller's executor. Never
// throws for DNS or record problems (they are temperror / permerror); throws
// only when cancelled.
asio::awaitable<SpfVerdict> evaluateSpf(Resolver& resolver, SpfRequest request,
                                        SpfLimits limits = {});

}  // namespace mxgate
