// mpt/error.hpp — the exceptions mpthrottle throws.
//
// Policy (also in the README):
//   * Expected outcomes are values: has_fuel() and await_fuel() return bool, never throw.
//   * Bad configuration (max_n <= 0, NaN, bad names, ...) throws mpt::InvalidArgument, once, where
//     the object is built. It derives from std::invalid_argument.
//   * Failures while creating or attaching a segment throw a subclass of mpt::SegmentError (itself
//   a
//     std::runtime_error): NotFound, AlreadyExists, PermissionDenied, IncompatibleSegment, or
//     SystemError for any other operating-system failure. Each message names the object and what
//     was wrong; code() gives the kind without parsing the message, and sys_errno() the errno
//     where one is involved (0 otherwise).
#pragma once

#include <stdexcept>
#include <string>

namespace mpt {

enum class ErrorCode {
  kInvalidArgument = 1,
  kNotFound = 2,
  kAlreadyExists = 3,
  kPermissionDenied = 4,
  kIncompatible = 5,  // wrong magic, ABI version, kind or size; truncated or corrupt
  kSystem = 6,        // any other operating-system failure
};

// Human name of an error code ("not found", ...).
const char* to_string(ErrorCode code) noexcept;

class InvalidArgument : public std::invalid_argument {
 public:
  explicit InvalidArgument(const std::string& what) : std::invalid_argument(what) {}
  ErrorCode code() const noexcept { return ErrorCode::kInvalidArgument; }
};

class SegmentError : public std::runtime_error {
 public:
  SegmentError(ErrorCode code, const std::string& what, int sys_errno = 0)
      : std::runtime_error(what), code_(code), errno_(sys_errno) {}
  ErrorCode code() const noexcept { return code_; }
  int sys_errno() const noexcept { return errno_; }

 private:
  ErrorCode code_;
  int errno_;
};

class NotFound : public SegmentError {
 public:
  explicit NotFound(const std::string& what, int e = 0)
      : SegmentError(ErrorCode::kNotFound, what, e) {}
};

class AlreadyExists : public SegmentError {
 public:
  explicit AlreadyExists(const std::string& what, int e = 0)
      : SegmentError(ErrorCode::kAlreadyExists, what, e) {}
};

class PermissionDenied : public SegmentError {
 public:
  explicit PermissionDenied(const std::string& what, int e = 0)
      : SegmentError(ErrorCode::kPermissionDenied, what, e) {}
};

class IncompatibleSegment : public SegmentError {
 public:
  explicit IncompatibleSegment(const std::string& what)
      : SegmentError(ErrorCode::kIncompatible, what) {}
};

class SystemError : public SegmentError {
 public:
  SystemError(const std::string& what, int e) : SegmentError(ErrorCode::kSystem, what, e) {}
};

}  // namespace mpt
