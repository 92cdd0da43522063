// Internal: one connection to a Redis server, every wait bounded by a deadline (the Redis backend,
// remote_impl.hpp, is its only user).
//
// hiredis formats the commands and parses the replies (its reader); the socket is ours and
// non-blocking, and every wait is a ppoll() for the time left until the deadline of the request
// (or of the connection attempt), so a server that answers late, trickles one byte at a time or
// never answers costs at most that time. A caught signal ends a wait at once (EINTR is never
// retried): the request fails as kInterrupted, as poll(2) would, whatever SA_RESTART says.
//
// Name resolution runs in a helper thread that the caller leaves at its deadline; the thread ends
// on its own and frees what it used. A later attempt for the same host and port waits for that
// lookup instead of starting another, so a resolver that never answers costs one thread, not one
// per attempt. A numeric address is never looked up.
//
// Replies are bounded: at most kMaxReplyBytes read for one reply, at most kMaxElements in any
// array (hiredis would otherwise allocate what a header claims). Extra bytes after a reply are a
// protocol error. Every failure leaves the connection unusable; the descriptor is closed by the
// destructor, on every path.
//
// Not safe for concurrent use (the backend holds its mutex around each call).
#pragma once

#include <signal.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct redisReply;
struct redisReader;

namespace mpt::detail {

inline constexpr std::size_t kMaxReplyBytes = std::size_t{1} << 20;  // 1 MiB
inline constexpr long kMaxElements = 4096;

// A file descriptor, closed once.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const noexcept { return fd_; }
  int release() noexcept;
  void reset() noexcept;

 private:
  int fd_ = -1;
};

struct ReplyFree {
  void operator()(redisReply* r) const noexcept;
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

// How a connection attempt or a request ended.
enum class IoStatus {
  kOk,
  kTimeout,      // the deadline passed
  kInterrupted,  // a signal handler ran (EINTR)
  kRefused,      // no connection: refused, unreachable, the name does not resolve
  kLost,         // the connection broke, or the server closed it
  kProtocol,     // not RESP, bytes after the reply, too large (kMaxReplyBytes, kMaxElements)
};

struct IoResult {
  IoStatus status = IoStatus::kOk;
  std::string detail;  // what went wrong, for messages (no server text beyond kProtocol's)
  explicit operator bool() const noexcept { return status == IoStatus::kOk; }
};

// A name lookup in a helper thread (see the banner). Shared by the caller and the thread.
class Lookup;

class RedisConn {
 public:
  // RedisConn::open()
  // Resolves host (unless numeric) and connects before deadline_ns (CLOCK_MONOTONIC). `lookup`
  // holds a lookup left unfinished by an earlier attempt; it is reused if it is for this host and
  // port, and kept there if this attempt leaves it unfinished. Returns null and says why in *why.
  static std::unique_ptr<RedisConn> open(const std::string& host, int port,
                                         std::int64_t deadline_ns, std::shared_ptr<Lookup>* lookup,
                                         IoResult* why);
  ~RedisConn();
  RedisConn(const RedisConn&) = delete;
  RedisConn& operator=(const RedisConn&) = delete;

  // RedisConn::request()
  // Sends one command and reads its reply, both before deadline_ns. On success *reply holds it (an
  // error reply is a success here); on failure the connection must be dropped.
  IoResult request(const std::vector<std::string>& argv, std::int64_t deadline_ns, ReplyPtr* reply);

  // The process that opened the connection: a forked child drops its copy without using it.
  int owner_pid() const noexcept { return pid_; }

 private:
  RedisConn(UniqueFd fd, redisReader* reader);
  IoResult send_all(const std::string& bytes, std::int64_t deadline_ns);
  IoResult read_reply(std::int64_t deadline_ns, ReplyPtr* reply);

  UniqueFd fd_;
  redisReader* reader_;
  const sigset_t* poll_mask_ = nullptr;  // during request(): the caller's mask, for the waits
  int pid_;
  bool too_many_elements_ = false;  // set by the reader's array hook
  friend struct ReaderHooks;
};

}  // namespace mpt::detail
