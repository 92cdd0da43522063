// One connection to a Redis server with every wait bounded (see redis_conn.hpp).
#include "redis_conn.hpp"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>
#include <thread>
#include <type_traits>

#include <hiredis/hiredis.h>

#include "clock.hpp"

namespace mpt::detail {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}

int UniqueFd::release() noexcept {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void ReplyFree::operator()(redisReply* r) const noexcept {
  if (r) freeReplyObject(r);
}

namespace {

std::string errno_text(int e) {
  char buf[128];
  return ::strerror_r(e, buf, sizeof buf);
}

// Waits until fd is ready for `events` or deadline_ns passes. Never retries EINTR. With `mask`,
// the thread's signal mask during the wait only (ppoll sets it atomically): see RedisConn::request.
IoResult wait_fd(int fd, short events, std::int64_t deadline_ns, const sigset_t* mask = nullptr) {
  for (;;) {
    const std::int64_t left = deadline_ns - mono_ns();
    if (left <= 0) return {IoStatus::kTimeout, "timed out"};
    const timespec ts{static_cast<time_t>(left / 1'000'000'000),
                      static_cast<long>(left % 1'000'000'000)};
    pollfd p{fd, events, 0};
    const int r = ::ppoll(&p, 1, &ts, mask);
    if (r > 0) return {};  // POLLERR and POLLHUP too: the next call on fd says what happened
    if (r == 0) continue;  // the deadline, checked above
    if (errno == EINTR) return {IoStatus::kInterrupted, "interrupted by a signal"};
    return {IoStatus::kLost, errno_text(errno)};
  }
}

struct Address {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
};

std::vector<Address> addresses_of(const addrinfo* res) {
  std::vector<Address> out;
  for (const addrinfo* a = res; a; a = a->ai_next) {
    if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
    Address x;
    std::memcpy(&x.addr, a->ai_addr, a->ai_addrlen);
    x.len = a->ai_addrlen;
    x.family = a->ai_family;
    out.push_back(x);
  }
  return out;
}

std::string gai_text(int rc) {
  return rc == EAI_SYSTEM ? errno_text(errno) : ::gai_strerror(rc);
}

}  // namespace

// ---- name lookup in a helper thread ----------------------------------------------------------

class Lookup {
 public:
  Lookup(std::string host, std::string port)
      : host_(std::move(host)),
        port_(std::move(port)),
        done_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~Lookup() {
    if (res_) ::freeaddrinfo(res_);
  }
  Lookup(const Lookup&) = delete;
  Lookup& operator=(const Lookup&) = delete;

  // Starts the lookup; null (and *why) if no thread could be started.
  static std::shared_ptr<Lookup> start(const std::string& host, const std::string& port,
                                       IoResult* why) {
    auto l = std::make_shared<Lookup>(host, port);
    if (l->done_fd_.get() < 0) {
      *why = {IoStatus::kRefused, "cannot look up '" + host + "': eventfd: " + errno_text(errno)};
      return nullptr;
    }
    // The thread blocks every signal, so that a signal meant for the caller (a stop handler
    // waiting to interrupt it) is never taken by the helper instead.
    sigset_t all, old;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
      std::thread([l] { l->run(); }).detach();
    } catch (const std::exception& e) {  // whatever it is, this thread gets its signals back
      ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
      *why = {IoStatus::kRefused, "cannot look up '" + host + "': " + e.what()};
      return nullptr;
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return l;
  }

  bool is_for(const std::string& host, const std::string& port) const {
    return host == host_ && port == port_;
  }

  // Waits until the answer or deadline_ns; kOk fills *out.
  IoResult wait(std::int64_t deadline_ns, std::vector<Address>* out) {
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (done_) {
          if (rc_ != 0) return {IoStatus::kRefused, "cannot resolve '" + host_ + "': " + error_};
          *out = addresses_of(res_);
          if (out->empty()) return {IoStatus::kRefused, "'" + host_ + "' has no address"};
          return {};
        }
      }
      IoResult w = wait_fd(done_fd_.get(), POLLIN, deadline_ns);
      if (w.status == IoStatus::kTimeout) {
        return {IoStatus::kTimeout, "name resolution of '" + host_ + "' did not finish"};
      }
      if (!w) return w;
    }
  }

 private:
  void run() noexcept {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const int rc = ::getaddrinfo(host_.c_str(), port_.c_str(), &hints, &res);
    {
      std::lock_guard lock(mu_);
      rc_ = rc;
      res_ = res;
      if (rc != 0) error_ = gai_text(rc);
      done_ = true;
    }
    const std::uint64_t one = 1;
    (void)!::write(done_fd_.get(), &one, sizeof one);
  }

  const std::string host_, port_;
  UniqueFd done_fd_;  // readable once the lookup is done
  std::mutex mu_;
  bool done_ = false;
  int rc_ = 0;
  std::string error_;
  addrinfo* res_ = nullptr;
};

// ---- the reader, with arrays bounded -----------------------------------------------------------

namespace {

thread_local bool t_too_many_elements = false;

// hiredis allocates an array as soon as it reads the header ("*2000000000"): refuse more than
// kMaxElements. The signature differs between hiredis versions (int or size_t elements).
template <class F>
struct ArrayHook;
template <class R, class T, class N>
struct ArrayHook<R (*)(T, N)> {
  static inline R (*inner)(T, N) = nullptr;
  static R call(T task, N n) {
    bool bad = static_cast<unsigned long long>(n) > static_cast<unsigned long long>(kMaxElements);
    if constexpr (std::is_signed_v<N>) bad = bad || n < 0;
    if (bad) {
      t_too_many_elements = true;
      return nullptr;
    }
    return inner(task, n);
  }
};
using Hook = ArrayHook<decltype(redisReplyObjectFunctions::createArray)>;

// hiredis's default reply functions (it keeps them private: read them from a reader), with the
// array hook.
redisReplyObjectFunctions* bounded_functions() {
  static redisReplyObjectFunctions table = [] {
    redisReader* r = redisReaderCreate();
    if (!r) throw std::bad_alloc();
    redisReplyObjectFunctions t = *r->fn;
    redisReaderFree(r);
    Hook::inner = t.createArray;
    t.createArray = &Hook::call;
    return t;
  }();
  return &table;
}

struct CommandFree {
  void operator()(char* c) const noexcept { redisFreeCommand(c); }
};

// The addresses of host:service: at once for a numeric address, else from the bounded lookup
// (which goes on after a timeout, so that the next attempt waits for the same one).
bool resolve(const std::string& host, const std::string& service, std::int64_t deadline_ns,
             std::shared_ptr<Lookup>* lookup, IoResult* why, std::vector<Address>* addrs) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* numeric = nullptr;
  if (::getaddrinfo(host.c_str(), service.c_str(), &hints, &numeric) == 0) {
    *addrs = addresses_of(numeric);
    ::freeaddrinfo(numeric);
    return true;
  }
  if (!*lookup || !(*lookup)->is_for(host, service)) {
    *lookup = Lookup::start(host, service, why);
    if (!*lookup) return false;
  }
  *why = (*lookup)->wait(deadline_ns, addrs);
  if (why->status == IoStatus::kTimeout || why->status == IoStatus::kInterrupted) return false;
  lookup->reset();  // answered: the next attempt looks up afresh
  return static_cast<bool>(*why);
}

// A connected non-blocking socket to `a`, or -1 with *why: kRefused (try the next address), or
// kTimeout / kInterrupted / another failure (give up).
UniqueFd connect_one(const Address& a, std::int64_t deadline_ns, IoResult* why) {
  UniqueFd fd(::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    *why = {IoStatus::kRefused, "socket: " + errno_text(errno)};
    return UniqueFd(-1);
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a.addr), a.len) == 0) return fd;
  if (errno == EINTR) {
    *why = {IoStatus::kInterrupted, "interrupted by a signal"};
    return UniqueFd(-1);
  }
  if (errno != EINPROGRESS) {
    *why = {IoStatus::kRefused, errno_text(errno)};
    return UniqueFd(-1);
  }
  const IoResult w = wait_fd(fd.get(), POLLOUT, deadline_ns);
  if (!w) {
    *why = w.status == IoStatus::kTimeout
               ? IoResult{IoStatus::kTimeout, "no answer to the connection request"}
               : w;
    return UniqueFd(-1);
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    *why = {IoStatus::kRefused, errno_text(err)};
    return UniqueFd(-1);
  }
  return fd;
}

void set_socket_options(int fd) {
  const int one = 1, idle_s = 15, interval_s = 5, count = 3;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

}  // namespace

// ---- the connection ---------------------------------------------------------------------------

RedisConn::RedisConn(UniqueFd fd, redisReader* reader)
    : fd_(std::move(fd)), reader_(reader), pid_(static_cast<int>(::getpid())) {}

RedisConn::~RedisConn() {
  if (reader_) redisReaderFree(reader_);
}

std::unique_ptr<RedisConn> RedisConn::open(const std::string& host, int port,
                                           std::int64_t deadline_ns,
                                           std::shared_ptr<Lookup>* lookup, IoResult* why) {
  std::vector<Address> addrs;
  if (!resolve(host, std::to_string(port), deadline_ns, lookup, why, &addrs)) return nullptr;
  *why = {IoStatus::kRefused, "'" + host + "' has no address"};
  for (const Address& a : addrs) {
    UniqueFd fd = connect_one(a, deadline_ns, why);
    if (fd.get() < 0) {
      if (why->status == IoStatus::kRefused) continue;  // try the next address
      return nullptr;
    }
    set_socket_options(fd.get());
    redisReader* reader = redisReaderCreateWithFunctions(bounded_functions());
    if (!reader) {
      *why = {IoStatus::kLost, "out of memory"};
      return nullptr;
    }
    *why = {};
    return std::unique_ptr<RedisConn>(new RedisConn(std::move(fd), reader));
  }
  return nullptr;
}

IoResult RedisConn::send_all(const std::string& bytes, std::int64_t deadline_ns) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd_.get(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) return {IoStatus::kInterrupted, "interrupted by a signal"};
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      IoResult w = wait_fd(fd_.get(), POLLOUT, deadline_ns, poll_mask_);
      if (!w) return w;
      continue;
    }
    return {IoStatus::kLost, n < 0 ? errno_text(errno) : "cannot send"};
  }
  return {};
}

IoResult RedisConn::read_reply(std::int64_t deadline_ns, ReplyPtr* reply) {
  std::size_t got = 0;
  for (;;) {
    t_too_many_elements = false;
    void* out = nullptr;
    if (redisReaderGetReply(reader_, &out) != REDIS_OK) {
      if (t_too_many_elements) {
        return {IoStatus::kProtocol,
                "an array of more than " + std::to_string(kMaxElements) + " elements"};
      }
      return {IoStatus::kProtocol, reader_->errstr};
    }
    if (out) {
      reply->reset(static_cast<redisReply*>(out));
      if (reader_->pos < reader_->len) return {IoStatus::kProtocol, "bytes after the reply"};
      return {};
    }
    if (got > kMaxReplyBytes) {
      return {IoStatus::kProtocol,
              "a reply larger than " + std::to_string(kMaxReplyBytes >> 20) + " MiB"};
    }
    IoResult w = wait_fd(fd_.get(), POLLIN, deadline_ns, poll_mask_);
    if (!w) return w;
    char buf[16384];
    const std::size_t want = std::min(sizeof buf, kMaxReplyBytes + 1 - got);
    const ssize_t n = ::recv(fd_.get(), buf, want, 0);
    if (n == 0) return {IoStatus::kLost, "the server closed the connection"};
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (errno == EINTR) return {IoStatus::kInterrupted, "interrupted by a signal"};
      return {IoStatus::kLost, errno_text(errno)};
    }
    got += static_cast<std::size_t>(n);
    if (redisReaderFeed(reader_, buf, static_cast<std::size_t>(n)) != REDIS_OK)
      return {IoStatus::kLost, "out of memory"};
  }
}

IoResult RedisConn::request(const std::vector<std::string>& argv, std::int64_t deadline_ns,
                            ReplyPtr* reply) {
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  char* raw = nullptr;
  const int len =
      redisFormatCommandArgv(&raw, static_cast<int>(argv.size()), ptrs.data(), lens.data());
  const std::unique_ptr<char, CommandFree> cmd(raw);
  if (len < 0 || !raw) return {IoStatus::kLost, "out of memory"};
  // A signal must end the request whenever it comes, not only while the thread sits in ppoll: one
  // that came while it was reading a part of the reply would otherwise be handled there and lost,
  // and the request would wait for the rest (up to command_timeout). So the asynchronous signals
  // are held for the request and let in by the waits alone, atomically (ppoll's mask): one that
  // came meanwhile is delivered in the next wait, which returns EINTR.
  sigset_t held, old;
  ::sigfillset(&held);
  for (const int sync : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS})
    ::sigdelset(&held, sync);  // a fault must still be delivered where it happens
  ::pthread_sigmask(SIG_BLOCK, &held, &old);
  poll_mask_ = &old;
  IoResult r = send_all(std::string(raw, static_cast<std::size_t>(len)), deadline_ns);
  if (r) r = read_reply(deadline_ns, reply);
  poll_mask_ = nullptr;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return r;
}

}  // namespace mpt::detail
