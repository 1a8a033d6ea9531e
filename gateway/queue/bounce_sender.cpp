#include "gateway/queue/bounce_sender.h"

#include <memory>

#include <spdlog/spdlog.h>

#include "gateway/queue/bounce.h"
#include "gateway/smtp/services.h"

namespace mxgate {

FailedHandler makeBounceSender(const DeliveryConfig& delivery, std::string hostname, Spool& spool,
                               QueueManager* const* queue) {
  BounceOptions options{delivery.bounce_guard, delivery.bounce_max_original};
  return [options, hostname, &spool, queue](const LoadedMessage& m,
                                            const std::vector<size_t>& rcpts,
                                            const std::vector<DeliveryResult>& results) {
    BounceRequest req;
    req.meta = &m.meta;
    req.message = m.body;
    req.reporting_mta = hostname;
    req.now = std::chrono::system_clock::now();
    for (size_t k = 0; k < rcpts.size(); ++k) {
      BounceRecipient r;
      r.address = m.meta.envelope.rcpts.at(rcpts[k]).address;
      r.envelope_index = static_cast<int>(rcpts[k]);
      const std::string& reply = results.at(k).reply;
      r.status = reply.substr(0, reply.find(' '));
      // The remote server's own words when there are some ("... said: 550
      // 5.1.1 ..."), so the DSN carries an smtp; Diagnostic-Code.
      size_t said = reply.find(" said: ");
      if (said != std::string::npos) {
        r.diagnostic = reply.substr(said + 7);
        size_t in_reply = r.diagnostic.rfind(" (in reply to ");
        if (in_reply != std::string::npos) r.diagnostic.resize(in_reply);
      } else {
        r.diagnostic = reply;
      }
      r.remote_mta = results.at(k).remote;
      r.last_attempt = req.now;
      req.failed.push_back(std::move(r));
    }
    BounceOutcome out = buildBounce(req, options);
    if (!out.send) {
      spdlog::info("{}: no bounce: {}", m.meta.queue_id, out.reason);
      return;
    }
    auto meta = std::make_shared<SpoolMeta>();
    meta->queue_id = newQueueId();
    meta->received_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(req.now.time_since_epoch()).count();
    meta->client_ip = "127.0.0.1";
    meta->client_name = "localhost";
    meta->helo = hostname;
    meta->protocol = "local";
    meta->envelope.mail_from = "";
    meta->envelope.rcpts.push_back(Recipient{out.bounce.envelope_to, "NEVER", ""});
    meta->envelope.body = out.bounce.eight_bit ? "8BITMIME" : "7BIT";
    meta->envelope.smtputf8 = out.bounce.smtputf8;
    meta->envelope.declared_size = out.bounce.message.size();
    meta->action = "accept";
    auto body = std::make_shared<std::string>(std::move(out.bounce.message));
    spdlog::info("{}: sender non-delivery notification: {} ({})", m.meta.queue_id, meta->queue_id,
                 out.reason);
    spool.append(encodeMeta(*meta), {*body},
                 [meta, body, queue](std::error_code ec, SpoolLocation loc) {
                   if (ec) {
                     spdlog::error("{}: cannot spool bounce: {}", meta->queue_id, ec.message());
                     return;
                   }
                   if (*queue != nullptr) (*queue)->enqueue(*meta, loc);
                 });
  };
}

}  // namespace mxgate
