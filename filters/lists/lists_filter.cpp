#include "filters/lists/lists_filter.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>

#include "filters/lists/address_pattern.h"
#include "gateway/config/table_reader.h"
#include "gateway/util/ip_set.h"

namespace mxgate {
namespace {

enum class DenyAction { kReject, kScore };

std::string ipText(const asio::ip::address& ip) {
  return canonicalAddress(ip).to_string();
}

// An IpSet that remembers how each network was written, for symbol details.
class IpList {
 public:
  void add(const Network& net, std::string_view entry) {
    set_.add(net);
    entries_.try_emplace({net.base, net.prefix}, entry);
  }
  const std::string* match(const asio::ip::address& ip) const {
    auto net = set_.match(ip);
    if (!net) return nullptr;
    return &entries_.at({net->base, net->prefix});
  }

 private:
  IpSet set_;
  std::map<std::pair<Ip6Bytes, int>, std::string> entries_;
};

struct Lists {
  IpList allow_ips, deny_ips;
  SenderPatternSet allow_senders, deny_senders;
  bool allow_ips_skip_content = true;
  // Envelope senders are trivially forged, so a sender allow entry only
  // lowers the score unless the admin opts in.
  bool allow_senders_skip_content = false;
  DenyAction deny_ip_action = DenyAction::kReject;
  DenyAction deny_sender_action = DenyAction::kReject;
};

// Adds one entry to an IP list or a sender list; false with *error if invalid.
bool addEntry(IpList& list, std::string_view entry, std::string* error) {
  auto net = Network::parse(entry);
  if (!net) *error = "\"" + std::string(entry) + "\" is not an IP address or CIDR network";
  if (net) list.add(*net, entry);
  return net.has_value();
}
bool addEntry(SenderPatternSet& list, std::string_view entry, std::string* error) {
  return list.add(entry, error);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Reads "<key>" (an array) and "<key>_file" (a path) into list.
template <typename List>
void readList(TableReader& config, const std::string& key, List& list) {
  std::string error;
  for (const std::string& entry : config.getStringList(key, {})) {
    if (!addEntry(list, entry, &error)) config.fail(key, error);
  }
  const std::string file_key = key + "_file";
  std::string path = config.getString(file_key, "");
  if (path.empty()) return;
  std::filesystem::path p(path);
  if (p.is_relative() && !config.file().empty())
    p = std::filesystem::path(config.file()).parent_path() / p;
  path = p.string();
  std::ifstream in(path);
  if (!in) config.fail(file_key, "cannot read " + path + ": " + std::strerror(errno));
  std::string line;
  for (uint32_t lineno = 1; std::getline(in, line); ++lineno) {
    std::string_view entry(line);
    // '#' starts a comment only at the start of a line or after a blank,
    // since it is a legal character in a local part.
    for (size_t i = entry.find('#'); i != std::string_view::npos; i = entry.find('#', i + 1)) {
      if (i == 0 || entry[i - 1] == ' ' || entry[i - 1] == '\t') {
        entry = entry.substr(0, i);
        break;
      }
    }
    entry = trim(entry);
    if (entry.empty()) continue;
    if (!addEntry(list, entry, &error)) throw ConfigError(path, lineno, error);
  }
  if (in.bad()) config.fail(file_key, "error reading " + path);
}

DenyAction readAction(TableReader& config, std::string_view key) {
  std::string v = config.getString(key, "reject");
  if (v == "reject") return DenyAction::kReject;
  if (v == "score") return DenyAction::kScore;
  config.fail(key, "must be \"reject\" or \"score\", not \"" + v + "\"");
}

class ListsFilter final : public Filter {
 public:
  explicit ListsFilter(Lists lists) : lists_(std::move(lists)) {}

  asio::awaitable<StageResult> check(Stage stage, FilterContext& ctx) override {
    co_return stage == Stage::kConnect ? checkIp(ctx) : checkSender(ctx);
  }

 private:
  StageResult checkIp(FilterContext& ctx) const {
    const asio::ip::address& ip = ctx.session().client_ip;
    // Allow wins: an allow-listed client is not looked up in the deny list.
    if (const std::string* hit = lists_.allow_ips.match(ip)) {
      ctx.addSymbol("LIST_ALLOW_IP", *hit);
      if (lists_.allow_ips_skip_content) ctx.skipContent();
      return StageResult::next();
    }
    if (const std::string* hit = lists_.deny_ips.match(ip)) {
      ctx.addSymbol("LIST_DENY_IP", *hit);
      if (lists_.deny_ip_action == DenyAction::kReject)
        return StageResult::reject(
            554, "5.7.1", "Access denied: client " + ipText(ip) + " is on the local deny list");
    }
    return StageResult::next();
  }

  StageResult checkSender(FilterContext& ctx) const {
    // The skip flag is set again per message in case the pipeline keeps it
    // per message rather than per session; the symbol was added at connect.
    if (lists_.allow_ips_skip_content && lists_.allow_ips.match(ctx.session().client_ip))
      ctx.skipContent();
    const std::string& sender = ctx.envelope().mail_from;
    if (const std::string* hit = lists_.allow_senders.match(sender)) {
      ctx.addSymbol("LIST_ALLOW_SENDER", *hit);
      if (lists_.allow_senders_skip_content) ctx.skipContent();
      return StageResult::next();
    }
    if (const std::string* hit = lists_.deny_senders.match(sender)) {
      ctx.addSymbol("LIST_DENY_SENDER", *hit);
      if (lists_.deny_sender_action == DenyAction::kReject)
        return StageResult::reject(550, "5.7.1", "Sender address rejected: on the local deny list");
    }
    return StageResult::next();
  }

  const Lists lists_;
};

FilterSpec listsSpec() {
  FilterSpec spec;
  spec.name = "lists";
  spec.stages = {Stage::kConnect, Stage::kMail};
  spec.symbols = {
      {"LIST_ALLOW_IP", -20, "client IP is allow-listed"},
      {"LIST_DENY_IP", 20, "client IP is deny-listed"},
      {"LIST_ALLOW_SENDER", -5, "envelope sender is allow-listed"},
      {"LIST_DENY_SENDER", 20, "envelope sender is deny-listed"},
  };
  spec.timeout = std::chrono::seconds(1);
  spec.fail_mode = FailMode::kTempfail;
  return spec;
}

std::unique_ptr<Filter> createLists(TableReader& config, const FilterDeps&) {
  Lists lists;
  readList(config, "allow_ips", lists.allow_ips);
  readList(config, "deny_ips", lists.deny_ips);
  readList(config, "allow_senders", lists.allow_senders);
  readList(config, "deny_senders", lists.deny_senders);
  lists.allow_ips_skip_content = config.getBool("allow_ips_skip_content", true);
  lists.allow_senders_skip_content = config.getBool("allow_senders_skip_content", false);
  lists.deny_ip_action = readAction(config, "deny_ip_action");
  lists.deny_sender_action = readAction(config, "deny_sender_action");
  return std::make_unique<ListsFilter>(std::move(lists));
}

}  // namespace

FilterFactory listsFilterFactory() {
  return {listsSpec, createLists};
}

}  // namespace mxgate
