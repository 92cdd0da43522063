// The URL of a throttle in Redis (redis_url.hpp); built with and without Redis support, so that
// a bad URL is the same error in both.
#include "redis_url.hpp"

#include <string>

#include "mpt/error.hpp"
#include "mpt/segment.hpp"

namespace mpt::detail {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s, const std::string& shown) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    const int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
    const int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      throw InvalidArgument("Redis URL '" + shown + "': bad %-escape in the user info");
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

}  // namespace

std::string RedisUrl::display() const {
  std::string out = "redis://";
  if (!user.empty()) out += user + "@";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return out + ":" + std::to_string(port) + "/" + name;
}

RedisUrl parse_redis_url(std::string_view url) {
  const std::string shown = redact_url(url);  // never the password, whatever is wrong
  auto bad = [&](const std::string& why) -> InvalidArgument {
    return InvalidArgument("Redis URL '" + shown + "': " + why +
                           " (expected redis://[[USER]:PASSWORD@]HOST[:PORT]/NAME)");
  };
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) throw bad("the scheme must be redis://");
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos)
    throw bad("query strings and fragments are not supported");
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) throw bad("no throttle name after the host");
  std::string_view authority = rest.substr(0, slash);
  const std::string_view name = rest.substr(slash + 1);
  RedisUrl out;
  const auto at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view info = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = info.find(':');
    if (colon == std::string_view::npos) {
      out.password = percent_decode(info, shown);  // redis://PASSWORD@host (as redis-cli -u)
    } else {
      out.user = percent_decode(info.substr(0, colon), shown);
      out.password = percent_decode(info.substr(colon + 1), shown);
    }
    out.has_password = true;
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) throw bad("unterminated IPv6 address");
    out.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw bad("junk after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) throw bad("empty port");
    }
  } else {
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      authority = authority.substr(0, colon);
      if (port.empty()) throw bad("empty port");
    }
    out.host = std::string(authority);
  }
  if (out.host.empty()) throw bad("no host");
  if (!port.empty()) {
    int p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || p > 65535) throw bad("the port must be a number from 1 to 65535");
      p = p * 10 + (c - '0');
    }
    if (p < 1 || p > 65535) throw bad("the port must be a number from 1 to 65535");
    out.port = p;
  }
  if (name.empty()) throw bad("no throttle name after the host");
  try {
    Segment::validate_name(name);
  } catch (const InvalidArgument& e) {
    throw bad(std::string("bad throttle name: ") + e.what());
  }
  out.name = std::string(name);
  return out;
}

}  // namespace mpt::detail
