// Small hostile Redis servers for the tests (tests/redis/hostile_test.cpp): a thread with a
// listening socket on 127.0.0.1 (an ephemeral port of its own, so tests run side by side), which
// serves each connection it accepts with a handler in a thread of its own. Handlers read RESP
// commands with read_command() and write whatever they like; all of them return soon after
// stopping() becomes true, and the destructor joins every thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace mpt::test {

class FakeServer {
 public:
  using Handler = std::function<void(FakeServer& server, int fd)>;

  explicit FakeServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      std::abort();
    }
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~FakeServer() {
    stop_.store(true);
    acceptor_.join();
    std::lock_guard lock(mu_);
    for (auto& t : conns_)
      t.join();
    ::close(listen_fd_);
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& name, const std::string& userinfo = "") const {
    return "redis://" + (userinfo.empty() ? "" : userinfo + "@") +
           "127.0.0.1:" + std::to_string(port_) + "/" + name;
  }
  bool stopping() const { return stop_.load(); }
  int accepted() const { return accepted_.load(); }

  // Waits until fd is readable (true), or the server stops / `ms` pass (false).
  bool wait_readable(int fd, int ms = -1) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!stopping()) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) return true;
      if (ms >= 0 && std::chrono::steady_clock::now() >= end) return false;
    }
    return false;
  }

  // Reads one RESP command (an array of bulk strings); nullopt when the peer closed or the
  // server stops. `buf` keeps what was read beyond it.
  std::optional<std::vector<std::string>> read_command(int fd, std::string& buf) const {
    for (;;) {
      if (auto cmd = parse(buf)) return cmd;
      if (!wait_readable(fd)) return std::nullopt;
      char chunk[4096];
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return std::nullopt;
      buf.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // Writes all of s; false when the peer is gone.
  static bool send_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }

  // Sleeps `ms`, in steps, returning false early when the server stops.
  bool nap(int ms) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      if (stopping()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return !stopping();
  }

  static std::string bulk(const std::string& s) {
    return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
  }

 private:
  static std::optional<std::vector<std::string>> parse(std::string& buf) {
    std::size_t pos = 0;
    auto line = [&](std::string* out) {
      const auto e = buf.find("\r\n", pos);
      if (e == std::string::npos) return false;
      *out = buf.substr(pos, e - pos);
      pos = e + 2;
      return true;
    };
    std::string l;
    if (!line(&l) || l.empty() || l[0] != '*') return std::nullopt;
    const long n = std::strtol(l.c_str() + 1, nullptr, 10);
    std::vector<std::string> out;
    for (long i = 0; i < n; ++i) {
      if (!line(&l) || l.empty() || l[0] != '$') return std::nullopt;
      const auto len = static_cast<std::size_t>(std::strtol(l.c_str() + 1, nullptr, 10));
      if (buf.size() < pos + len + 2) return std::nullopt;
      out.push_back(buf.substr(pos, len));
      pos += len + 2;
    }
    buf.erase(0, pos);
    return out;
  }

  void accept_loop() {
    while (!stop_.load()) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++accepted_;
      std::lock_guard lock(mu_);
      conns_.emplace_back([this, fd] {
        handler_(*this, fd);
        ::close(fd);
      });
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> conns_;
};

// A TCP proxy in front of a real server that passes everything through until trickle(true);
// from then on it hands the server's bytes to the client one every `gap_ms` (a slow link, or
// a proxy that wants to hold the client).
class TrickleProxy {
 public:
  TrickleProxy(int upstream_port, int gap_ms)
      : upstream_port_(upstream_port),
        gap_ms_(gap_ms),
        server_([this](FakeServer& s, int fd) { serve(s, fd); }) {}
  int port() const { return server_.port(); }
  std::string url(const std::string& name, const std::string& userinfo = "") const {
    return server_.url(name, userinfo);
  }
  void trickle(bool on) { trickle_.store(on); }

 private:
  void serve(FakeServer& s, int client) {
    const int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(upstream_port_));
    if (up < 0 || ::connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      if (up >= 0) ::close(up);
      return;
    }
    std::string to_client;  // bytes from the server not yet handed on
    auto last = std::chrono::steady_clock::now();
    while (!s.stopping()) {
      pollfd p[2] = {{client, POLLIN, 0}, {up, POLLIN, 0}};
      if (::poll(p, 2, 10) < 0) break;
      char chunk[4096];
      if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t n = ::recv(client, chunk, sizeof chunk, 0);
        if (n <= 0 || !FakeServer::send_all(up, std::string(chunk, static_cast<std::size_t>(n))))
          break;
      }
      if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t n = ::recv(up, chunk, sizeof chunk, 0);
        if (n <= 0) break;
        to_client.append(chunk, static_cast<std::size_t>(n));
      }
      if (to_client.empty()) continue;
      if (!trickle_.load()) {
        if (!FakeServer::send_all(client, to_client)) break;
        to_client.clear();
      } else if (std::chrono::steady_clock::now() - last >= std::chrono::milliseconds(gap_ms_)) {
        if (!FakeServer::send_all(client, to_client.substr(0, 1))) break;
        to_client.erase(0, 1);
        last = std::chrono::steady_clock::now();
      }
    }
    ::close(up);
  }

  int upstream_port_;
  int gap_ms_;
  std::atomic<bool> trickle_{false};
  FakeServer server_;  // last: its threads use the members above
};

}  // namespace mpt::test
