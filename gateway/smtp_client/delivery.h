// Delivering one message to a destination: resolve it, then try its hosts
// in order until every recipient has a final answer.
//
// Per recipient, the answer of the last host tried counts. A host is left
// for the next one when the session fails (connection refused or lost,
// timeout, TLS or AUTH failure, 421, a refused greeting or EHLO, or our own
// SIZE/8BITMIME/SMTPUTF8 refusal), and recipients with a temporary (4xx)
// answer are tried at the next host too (as Postfix does); 2xx and
// message-level 5xx answers are final.
#pragma once

#include <vector>

#include <asio/awaitable.hpp>

#include "gateway/dns/resolver.h"
#include "gateway/smtp_client/connection.h"
#include "gateway/smtp_client/connection_cache.h"
#include "gateway/smtp_client/mx.h"
#include "gateway/smtp_client/types.h"

namespace mxgate::smtp_client {

struct DeliveryOptions {
  ClientOptions client;
  ResolveOptions resolve;
  size_t max_addresses = 5;  // endpoints tried per delivery (Postfix smtp_mx_address_limit)
};

// Runs on the caller's executor. cache may be null (a new connection per
// message, closed with QUIT after it).
asio::awaitable<DeliveryReport> deliverToEndpoints(const std::vector<Endpoint>& endpoints,
                                                   ConnectionCache* cache,
                                                   const OutboundMessage& msg,
                                                   const ClientOptions& options);

// resolveTarget, then deliverToEndpoints. A resolution failure gives every
// recipient its reply and sets dns_error as Resolution does.
asio::awaitable<DeliveryReport> deliver(Resolver& resolver, ConnectionCache* cache,
                                        const SmtpTarget& target, const OutboundMessage& msg,
                                        const DeliveryOptions& options);

}  // namespace mxgate::smtp_client
