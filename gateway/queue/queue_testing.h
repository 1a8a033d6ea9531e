// Shared helpers for the queue tests: envelopes and a spool writer.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gateway/spool/spool.h"
#include "gateway/util/temp_dir.h"

namespace mxgate::testing {

inline SpoolMeta queueMeta(const std::string& id, std::vector<std::string> rcpts,
                           std::string action = "accept") {
  SpoolMeta m;
  m.queue_id = id;
  m.received_ms = 1'700'000'000'000;
  m.client_ip = "192.0.2.1";
  m.protocol = "ESMTP";
  m.envelope.mail_from = "sender@example.org";
  for (auto& r : rcpts) m.envelope.rcpts.push_back(Recipient{r, "", ""});
  m.action = std::move(action);
  return m;
}

// Appends one record and waits until it is durable.
inline SpoolLocation spoolWrite(Spool& spool, const SpoolMeta& meta, const std::string& body) {
  std::promise<SpoolLocation> done;
  spool.append(encodeMeta(meta), {body}, [&](std::error_code ec, SpoolLocation loc) {
    EXPECT_FALSE(ec) << ec.message();
    done.set_value(loc);
  });
  return done.get_future().get();
}

}  // namespace mxgate::testing
