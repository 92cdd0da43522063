// mpt/error.hpp — the exceptions mpthrottle throws.
//
// Policy (also in docs/reliability.md, "Errors"):
//   * Expected outcomes are values: has_fuel() and await_fuel() return bool, never throw.
//   * Bad configuration (max_n <= 0, NaN, bad names, ...) throws mpt::InvalidArgument, once, where
//     the object is built. It derives from std::invalid_argument.
//   * Failures while creating or attaching a segment throw a subclass of mpt::SegmentError (itself
//   a
//     std::runtime_error): NotFound, AlreadyExists, PermissionDenied, IncompatibleSegment, or
//     SystemError for any other operating-system failure. Each message names the object and what
//     was wrong; code() gives the kind without parsing the message, and sys_errno() the errno
//     where one is involved (0 otherwise).
//   * The Redis backend (RemoteThrottle, redis.hpp) throws mpt::RemoteError where it is built or
//     administered (connect, start, stop, set_rate, snapshot): kUnavailable when the server cannot
//     be reached or does not answer in time, kPermissionDenied for a refused AUTH, kIncompatible
//     for a key of the wrong type, kNotFound for a name that does not exist. The hot path returns
//     false instead and RemoteThrottle::last_error() says why (see RemoteOptions::on_unavailable).
//   * No message, exception, last_error(), on_error call or url() ever shows a password: URLs are
//     shown as redact_url() gives them, and text from a server has the password replaced.
//   * A worker process of Pool::map() or process_parallel() that dies (signal, exit, uncaught
//     exception) makes the call throw mpt::WorkerDied, naming the item it held and the signal or
//     exit status.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mpt {

// The values are the C ABI's error codes (mpt/mpt.h: MPT_E_NOT_FOUND == kNotFound, ...). 7 and 8
// are the C ABI's own MPT_E_NO_MEMORY and MPT_E_UNKNOWN (C++ throws std::bad_alloc, or whatever
// it was, instead), so kUnavailable is 9.
enum class ErrorCode {
  kInvalidArgument = 1,
  kNotFound = 2,
  kAlreadyExists = 3,
  kPermissionDenied = 4,
  kIncompatible = 5,  // wrong magic, ABI version, kind or size; truncated or corrupt
  kSystem = 6,        // any other operating-system failure
  kUnavailable = 9,   // a remote backend (Redis) cannot be reached, or did not answer in time
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

// A remote backend (Redis) failed: the message names the URL and what went wrong; code() is
// kUnavailable, kPermissionDenied (authentication), kIncompatible (a key of the wrong type or not
// made by mpthrottle), kNotFound (no throttle of that name) or kInvalidArgument (a server error).
class RemoteError : public std::runtime_error {
 public:
  RemoteError(ErrorCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

// mpt::redact_url()
// The URL as typed, fit for a message however malformed it is: everything between "://" and the
// last '@' (the user info, and with it any password, whatever characters it holds) becomes
// "***", and so does a query string or fragment ("?password=..."); without an '@', a port that is
// not a number becomes "***" too ("redis://user:PASSWORD/x", with its "@HOST" forgotten).
// Without "://", only what comes before the last '@' and after a '?' or '#' is hidden. Never
// throws but std::bad_alloc.
std::string redact_url(std::string_view url);

// A worker process died while Pool::map() or process_parallel() needed it. The message names the
// call, the worker, the item it held (if any) and "killed by signal 9 (SIGKILL)" or "exited with
// status 3" (plus the exception's message when the worker's function threw).
class WorkerDied : public std::runtime_error {
 public:
  WorkerDied(const std::string& what, pid_t pid, std::int64_t item, int exitcode)
      : std::runtime_error(what), pid_(pid), item_(item), exitcode_(exitcode) {}
  pid_t pid() const noexcept { return pid_; }
  // Index of the item the worker was processing (in generator or input order); -1 if none.
  std::int64_t item() const noexcept { return item_; }
  // As Process::exitcode(): the exit status, or minus the signal number.
  int exitcode() const noexcept { return exitcode_; }

 private:
  pid_t pid_;
  std::int64_t item_;
  int exitcode_;
};

}  // namespace mpt
