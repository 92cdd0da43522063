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

}  // namespace mpt
