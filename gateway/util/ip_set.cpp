#include "gateway/util/ip_set.h"

#include <algorithm>
#include <charconv>

namespace mxgate {

asio::ip::address canonicalAddress(const asio::ip::address& addr) {
  if (addr.is_v6() && addr.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  return addr;
}

Ip6Bytes toIp6Bytes(const asio::ip::address& addr) {
  if (addr.is_v6()) return addr.to_v6().to_bytes();
  Ip6Bytes out{};
  out[10] = 0xff;
  out[11] = 0xff;
  auto v4 = addr.to_v4().to_bytes();
  std::copy(v4.begin(), v4.end(), out.begin() + 12);
  return out;
}

Ip6Bytes maskTo(const Ip6Bytes& addr, int prefix) {
  Ip6Bytes out{};
  for (int i = 0; i < 16; ++i) {
    int bits = std::clamp(prefix - i * 8, 0, 8);
    out[i] = static_cast<uint8_t>(addr[i] & (bits == 0 ? 0 : (0xff << (8 - bits)) & 0xff));
  }
  return out;
}

std::optional<Network> Network::parse(std::string_view text) {
  std::string_view host = text;
  std::optional<int> len;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    host = text.substr(0, slash);
    std::string_view l = text.substr(slash + 1);
    int n = -1;
    auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), n);
    if (ec != std::errc() || p != l.data() + l.size() || l.empty()) return std::nullopt;
    len = n;
  }
  asio::error_code ec;
  auto addr = asio::ip::make_address(std::string(host), ec);
  if (ec) return std::nullopt;
  Network net;
  if (addr.is_v4()) {
    int l = len.value_or(32);
    if (l < 0 || l > 32) return std::nullopt;
    net.prefix = 96 + l;
  } else {
    int l = len.value_or(128);
    if (l < 0 || l > 128) return std::nullopt;
    net.prefix = l;
  }
  net.base = maskTo(toIp6Bytes(addr), net.prefix);
  return net;
}

std::string Network::str() const {
  bool v4 = prefix >= 96 &&
            std::all_of(base.begin(), base.begin() + 10, [](uint8_t b) { return b == 0; }) &&
            base[10] == 0xff && base[11] == 0xff;
  if (v4) {
    asio::ip::address_v4::bytes_type b{base[12], base[13], base[14], base[15]};
    return asio::ip::address_v4(b).to_string() + "/" + std::to_string(prefix - 96);
  }
  return asio::ip::address_v6(base).to_string() + "/" + std::to_string(prefix);
}

size_t IpSet::Hash::operator()(const Ip6Bytes& b) const noexcept {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (uint8_t c : b) h = (h ^ c) * 1099511628211ull;
  return static_cast<size_t>(h);
}

void IpSet::add(const Network& net) {
  auto& bucket = by_prefix_[net.prefix];
  if (bucket.empty()) {
    lengths_.push_back(net.prefix);
    std::sort(lengths_.begin(), lengths_.end(), std::greater<>());
  }
  if (bucket.insert(net.base).second) ++count_;
}

std::optional<Network> IpSet::match(const asio::ip::address& addr) const {
  Ip6Bytes a = toIp6Bytes(addr);
  for (int len : lengths_) {
    Ip6Bytes m = maskTo(a, len);
    if (by_prefix_[len].count(m)) return Network{m, len};
  }
  return std::nullopt;
}

bool IpSet::contains(const asio::ip::address& addr) const {
  return match(addr).has_value();
}

}  // namespace mxgate
