#include "mpt/error.hpp"

namespace mpt {

const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kAlreadyExists:
      return "already exists";
    case ErrorCode::kPermissionDenied:
      return "permission denied";
    case ErrorCode::kIncompatible:
      return "incompatible segment";
    case ErrorCode::kSystem:
      return "system error";
    case ErrorCode::kUnavailable:
      return "unavailable";
  }
  return "unknown error";
}

std::string redact_url(std::string_view url) {
  const auto scheme = url.find("://");
  const std::size_t from = scheme == std::string_view::npos ? 0 : scheme + 3;
  std::string out(url.substr(0, from));
  std::string_view rest = url.substr(from);
  const auto at = rest.rfind('@');
  if (at != std::string_view::npos) {
    out += "***";
    rest = rest.substr(at);
  } else if (scheme != std::string_view::npos) {
    // No user info, but a port that is not a number may be a password whose '@HOST' is missing.
    const auto slash = rest.find_first_of("/?#");
    const std::string_view authority = rest.substr(0, slash);
    const auto colon = authority.rfind(':');
    const auto bracket = authority.rfind(']');
    if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket) &&
        authority.find_first_not_of("0123456789", colon + 1) != std::string_view::npos) {
      out += std::string(authority.substr(0, colon + 1)) + "***";
      rest = rest.substr(authority.size());
    }
  }
  const auto query = rest.find_first_of("?#");
  if (query != std::string_view::npos) return out + std::string(rest.substr(0, query + 1)) + "***";
  return out + std::string(rest);
}

}  // namespace mpt
