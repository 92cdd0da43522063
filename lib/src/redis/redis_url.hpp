// Internal: the URL of a throttle in Redis, "redis://[[USER]:PASSWORD@]HOST[:PORT]/NAME".
#pragma once

#include <string>
#include <string_view>

namespace mpt::detail {

// parse_redis_url() throws InvalidArgument naming what is wrong, with the URL shown as
// mpt::redact_url() gives it (never the password).
struct RedisUrl {
  std::string host;
  int port = 6379;
  std::string user;  // empty: the default user
  std::string password;
  bool has_password = false;
  std::string name;
  std::string display() const;  // the URL without the password
};
RedisUrl parse_redis_url(std::string_view url);

}  // namespace mpt::detail
