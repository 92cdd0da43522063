// A real redis-server for the tests: started on a free loopback port as a child of the test,
// waited for with PING, killed (SIGKILL) and reaped when the fixture goes away. Tests skip, with
// the reason printed, only when redis-server is not installed (scripts/install-deps installs it).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace mpt::test {

inline std::string redis_server_path() {
  for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

// A port nobody listens on now: bind 127.0.0.1:0, read the port, close.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

class RedisServer {
 public:
  // Another test may take the port between free_port() and the server's bind: then the server
  // that answers is not ours (see start()) and a new port is tried.
  explicit RedisServer(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    for (int attempt = 0; attempt < 5 && !ready_; ++attempt) {
      kill();
      port_ = free_port();
      start();
    }
  }
  ~RedisServer() { kill(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  bool ready() const { return ready_; }
  std::string url(const std::string& name) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/" + name;
  }

  // Starts redis-server on port() and waits (at most 5 s) until it answers, as itself: the server
  // on the port must report our child's process id (tests run side by side, each with its own
  // server). ready() is false otherwise.
  void start() {
    const std::string path = redis_server_path();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      std::vector<std::string> args{
          path,           "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
          "--appendonly", "no",     "--daemonize",         "no"};
      args.insert(args.end(), extra_.begin(), extra_.end());
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(path.c_str(), argv.data());
      ::_exit(127);
    }
    ready_ = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, nullptr, WNOHANG) != 0) {  // ours exited: the port was taken
        pid_ = -1;
        return;
      }
      const std::string info = command({"INFO", "server"}, password());
      ready_ = info.find("process_id:" + std::to_string(pid_) + "\r") != std::string::npos;
      if (ready_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // The --requirepass among the extra arguments, if any.
  std::string password() const {
    for (std::size_t i = 0; i + 1 < extra_.size(); ++i)
      if (extra_[i] == "--requirepass") return extra_[i + 1];
    return {};
  }

  // SIGKILL and reap (idempotent).
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  // One command on a fresh connection; the reply as text ("" for nil, "ERR ..." for errors).
  std::string command(const std::vector<std::string>& args, const std::string& password = "") {
    timeval tv{1, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    std::string out;
    if (!c || c->err) {
      if (c) redisFree(c);
      return "connect failed";
    }
    redisSetTimeout(c, tv);
    if (!password.empty()) {
      auto* a = static_cast<redisReply*>(redisCommand(c, "AUTH %s", password.c_str()));
      if (a) freeReplyObject(a);
    }
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data()));
    if (r) {
      if (r->type == REDIS_REPLY_INTEGER)
        out = std::to_string(r->integer);
      else if (r->str)
        out = std::string(r->str, r->len);
      freeReplyObject(r);
    }
    redisFree(c);
    return out;
  }

 private:
  std::vector<std::string> extra_;
  int port_ = -1;
  pid_t pid_ = -1;
  bool ready_ = false;
};

}  // namespace mpt::test

#define MPT_REQUIRE_REDIS_SERVER()                                                        \
  do {                                                                                    \
    if (mpt::test::redis_server_path().empty())                                           \
      GTEST_SKIP() << "redis-server is not installed (scripts/install-deps installs it)"; \
  } while (0)
