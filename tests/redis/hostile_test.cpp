// The Redis backend against hostile or broken peers (issue 14): small fake servers written here
// (tests/redis/fake_server.hpp: a thread with a listening socket), a proxy that trickles a real
// server's replies, and a resolver that never answers (a mount namespace with its own
// /etc/resolv.conf). Every call is bounded by its timeouts and ends at a signal, no message shows
// a password, a failed connection keeps no socket, and a huge reply costs no memory.
//
// What could hang or blow up runs in a forked child with a time limit, which reports back through
// a pipe ("key=value" lines): the test then fails instead of hanging, and the figures (seconds,
// fds, bytes) are printed either way.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <dirent.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_server.hpp"
#include "mpt/error.hpp"
#include "mpt/redis.hpp"
#include "redis_fixture.hpp"
#include "test_util.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::FakeServer;
using test::RedisServer;
using test::TrickleProxy;
using Report = std::map<std::string, std::string>;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Runs `body` in a forked child, which reports with put(key, value) as it goes, and returns what it
// reported, with "timeout" = "1" if it had not finished after `limit` (it is then killed).
using Put = std::function<void(const std::string& key, const std::string& value)>;
Report in_child(const std::function<void(const Put&)>& body, std::chrono::milliseconds limit) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return {{"error", "pipe"}};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    const Put put = [fd = p[1]](const std::string& k, const std::string& v) {
      std::string line = k + "=" + v;
      for (char& c : line)
        if (c == '\n') c = ' ';
      line += "\n";
      (void)!::write(fd, line.data(), line.size());
    };
    try {
      body(put);
    } catch (const std::exception& e) {
      put("exception", e.what());
    }
    ::_exit(0);
  }
  ::close(p[1]);
  const int rc = test::wait_child(pid, limit);
  std::string text;
  char buf[4096];
  ssize_t n;
  ::fcntl(p[0], F_SETFL, O_NONBLOCK);
  while ((n = ::read(p[0], buf, sizeof buf)) > 0)
    text.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  Report r;
  if (rc < 0) r["timeout"] = "1";
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) r[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return r;
}

std::string get(const Report& r, const std::string& k) {
  const auto it = r.find(k);
  return it == r.end() ? std::string() : it->second;
}

double num(const Report& r, const std::string& k) {
  const std::string v = get(r, k);
  return v.empty() ? -1.0 : std::strtod(v.c_str(), nullptr);
}

std::string show(const Report& r) {
  std::string s;
  for (const auto& [k, v] : r)
    s += "  " + k + " = " + v + "\n";
  return s;
}

int count_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d))
      ++n;
    ::closedir(d);
  }
  return n - 3;  // ".", ".." and the directory's own descriptor
}

long vm_hwm_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

// A fake server that answers like Redis as far as the handshake goes (AUTH, SCRIPT LOAD), then
// answers the script's calls with `reply`.
FakeServer::Handler answering(std::string reply) {
  return [reply](FakeServer& s, int fd) {
    std::string buf;
    while (auto cmd = s.read_command(fd, buf)) {
      std::string out = reply;
      if (!cmd->empty() && (*cmd)[0] == "AUTH") out = "+OK\r\n";
      if (cmd->size() >= 2 && (*cmd)[0] == "SCRIPT")
        out = FakeServer::bulk("0123456789012345678901234567890123456789");
      if (!FakeServer::send_all(fd, out)) return;
    }
  };
}

// Reads a command, then sends one byte every 300 ms, forever: a status line that never ends.
void trickle_forever(FakeServer& s, int fd) {
  std::string buf;
  if (!s.read_command(fd, buf)) return;
  if (!FakeServer::send_all(fd, "+")) return;
  while (s.nap(300))
    if (!FakeServer::send_all(fd, "O")) return;
}

// ---- 1. passwords ------------------------------------------------------------------------------

TEST(RedisHostileTest, PasswordsNeverAppearInUrlErrors) {
  const std::vector<std::string> urls = {
      "redis://:secretpw@host:99999/x",
      "redis://user:secretpw@host:0/x",
      "redis://:secretpw@/x",
      "redis://:secretpw@host",
      "redis://:secretpw@host:6379/",
      "redis://:secretpw@host:6379/bad name",
      "redis://:secretpw@host:6379/a/b",
      "redis://:secret%zzpw@host/x",
      "redis://:secret%70w@host:99999/x",  // %70 is 'p': neither form may show
      "redis://:secretpw@[::1/x",
      "redis://:secretpw@[::1]x/y",
      "redis://:secretpw@host/x?db=1",
      "redis://:secretpw@host/x#frag",
      "redis://host/x?password=secretpw",
      "http://:secretpw@host/x",
      "rediss://:secretpw@host/x",
      "redis:/:secretpw@host/x",
      "redis://:secret/pw@host:99999/x",  // '/', '@', '#' unescaped in the password
      "redis://:secret@pw@host:99999/x",
      "redis://:secret#pw@host/x",
      "redis://user:secretpw/x",  // the '@host' forgotten: the password would read as a port
      "redis://user:secretpw",
  };
  for (const auto& url : urls) {
    std::string e = "(no exception)";
    try {
      (void)RemoteThrottle::connect(url, 10);
    } catch (const InvalidArgument& x) {
      e = x.what();
    } catch (const std::exception& x) {
      e = std::string("other exception: ") + x.what();
    }
    EXPECT_EQ(e.find("secret"), std::string::npos) << url << " -> " << e;
    EXPECT_EQ(e.find("pw@"), std::string::npos) << url << " -> " << e;
    EXPECT_NE(e.find("Redis URL"), std::string::npos) << url << " -> " << e;
  }
}

TEST(RedisHostileTest, PasswordsNeverAppearInMptOutput) {
  const std::vector<std::vector<std::string>> cmds = {
      {"stat", "redis://:secretpw@host:99999/x"},
      {"stat", "--json", "redis://:secretpw@host:99999/x"},
      {"stat", "redis://:secretpw@h/a", "redis://:secretpw@h/b"},  // CLI11 echoes an extra one
      {"stat", "--json", "redis://:secretpw@h/a", "redis://:secretpw@h/b"},
      {"run", "--backend", "redis://:secretpw@host:99999/x", "--rate", "10", "--workers", "1",
       "--seconds", "1", "--json"},
      {"run", "--backend=redis://user:secretpw@host/x y", "--rate", "10", "--workers", "1",
       "--seconds", "1"},
      {"run", "--backend", "redis://:secretpw@127.0.0.1:1/x", "--rate", "10", "--workers", "1",
       "--seconds", "1", "--json"},
      {"stat", "redis://:secretpw@127.0.0.1:1/x"},
  };
  for (const auto& args : cmds) {
    std::string c = "mpt";  // the command line, for the messages
    for (const auto& a : args)
      c += " " + a;
    const test::ProgramResult r = test::run_mpt(args);
    const int rc = r.code;
    const std::string out = r.out + r.err;  // stdout and stderr together
    EXPECT_NE(rc, 0) << c;
    EXPECT_EQ(out.find("secret"), std::string::npos) << c << " ->\n" << out;
  }
}

// A server that refuses the password and echoes it in its error; then one that takes it but
// whose later errors echo it too: no message, last_error() or on_error() shows it.
TEST(RedisHostileTest, PasswordsNeverAppearInServerErrors) {
  FakeServer refusing([](FakeServer& s, int fd) {
    std::string buf;
    while (auto cmd = s.read_command(fd, buf)) {
      std::string all;
      for (const auto& a : *cmd)
        all += a + " ";
      if (!FakeServer::send_all(fd, "-WRONGPASS invalid password: " + all + "\r\n")) return;
    }
  });
  try {
    (void)RemoteThrottle::connect(refusing.url("x", ":secretpw"), 10);
    ADD_FAILURE() << "connected";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kPermissionDenied);
    EXPECT_EQ(std::string(e.what()).find("secretpw"), std::string::npos) << e.what();
  }

  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server({"--requirepass", "secretpw"});
  ASSERT_TRUE(server.ready());
  std::vector<std::string> seen;
  std::mutex mu;
  RemoteOptions o;
  o.on_error = [&](const std::string& m) {
    std::lock_guard lock(mu);
    seen.push_back(m);
  };
  const std::string url =
      "redis://default:secretpw@127.0.0.1:" + std::to_string(server.port()) + "/pw";
  RemoteThrottle t = RemoteThrottle::connect(url, 10, 1s, o);
  EXPECT_EQ(t.url().find("secretpw"), std::string::npos) << t.url();
  t.start();
  EXPECT_TRUE(t.has_fuel());
  // The password changes and every client is dropped: the reconnection is refused.
  server.command({"CONFIG", "SET", "requirepass", "other"}, "secretpw");
  server.command({"CLIENT", "KILL", "TYPE", "normal"}, "other");
  EXPECT_FALSE(t.await_fuel(300ms));
  EXPECT_FALSE(t.last_error().empty());
  EXPECT_EQ(t.last_error().find("secretpw"), std::string::npos) << t.last_error();
  try {
    (void)t.snapshot();
  } catch (const RemoteError& e) {
    EXPECT_EQ(std::string(e.what()).find("secretpw"), std::string::npos) << e.what();
  }
  std::lock_guard lock(mu);
  EXPECT_FALSE(seen.empty());
  for (const auto& m : seen)
    EXPECT_EQ(m.find("secretpw"), std::string::npos) << m;
}

// ---- 2. a request is bounded as a whole, and a signal ends it ----------------------------------

// A connect() (its requests) against a server that trickles one byte every 300 ms: it fails after
// the command timeout instead of waiting as long as the server likes.
TEST(RedisHostileTest, TricklingServerFailsWithinTheCommandTimeout) {
  FakeServer trickler(trickle_forever);
  const Report r = in_child(
      [&](const Put& put) {
        RemoteOptions o;
        o.command_timeout = 400ms;
        const auto t0 = Clock::now();
        try {
          (void)RemoteThrottle::connect(trickler.url("x"), 10, 1s, o);
          put("error", "(connected)");
        } catch (const RemoteError& e) {
          put("error", e.what());
          put("code", std::to_string(static_cast<int>(e.code())));
        }
        put("seconds", std::to_string(seconds_since(t0)));
      },
      20s);
  std::printf("connect() to a trickling server, command_timeout 400 ms:\n%s", show(r).c_str());
  ASSERT_EQ(get(r, "timeout"), "") << "connect() still blocked after 20 s";
  EXPECT_GE(num(r, "seconds"), 0.35);
  EXPECT_LT(num(r, "seconds"), 1.5);
  EXPECT_NE(get(r, "error").find("no answer within 400 ms"), std::string::npos) << show(r);
  EXPECT_EQ(get(r, "code"), std::to_string(static_cast<int>(ErrorCode::kUnavailable)));
}

// A proxy that starts trickling a healthy server's replies mid-run: every call of a connected
// throttle (hot path, accessors, administration) gives up within its bounds.
TEST(RedisHostileTest, TricklingProxyBoundsEveryCall) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  TrickleProxy proxy(server.port(), 300);
  RemoteOptions o;
  o.command_timeout = 300ms;
  RemoteThrottle t = RemoteThrottle::connect(proxy.url("slow"), 100, 1s, o);
  t.start();
  ASSERT_TRUE(t.await_fuel(1s));
  proxy.trickle(true);
  const Report r = in_child(
      [&](const Put& put) {
        auto timed = [&](const std::string& what, const std::function<std::string()>& f) {
          const auto t0 = Clock::now();
          std::string result;
          try {
            result = f();
          } catch (const RemoteError& e) {
            result = std::string("RemoteError: ") + e.what();
          }
          put(what + "_s", std::to_string(seconds_since(t0)));
          put(what, result);
        };
        timed("has_fuel", [&] { return std::string(t.has_fuel() ? "true" : "false"); });
        timed("await_fuel", [&] { return std::string(t.await_fuel(5s) ? "true" : "false"); });
        timed("total", [&] { return std::to_string(t.total()); });
        timed("snapshot", [&] { return std::to_string(t.snapshot().total); });
        timed("stop", [&] { return std::to_string(t.stop().total); });
        put("kill_flag", t.kill_flag().is_set() ? "set" : "clear");
        put("last_error", t.last_error());
      },
      90s);
  std::printf("a connected throttle behind a proxy that trickles, command_timeout 300 ms:\n%s",
              show(r).c_str());
  ASSERT_EQ(get(r, "timeout"), "") << show(r);
  EXPECT_EQ(get(r, "has_fuel"), "false");
  EXPECT_LT(num(r, "has_fuel_s"), 1.0);
  EXPECT_EQ(get(r, "await_fuel"), "false");
  EXPECT_LT(num(r, "await_fuel_s"), 1.5);  // kFail: this request and one more attempt
  EXPECT_LT(num(r, "total_s"), 1.0);
  EXPECT_NE(get(r, "snapshot").find("no answer within 300 ms"), std::string::npos) << show(r);
  EXPECT_LT(num(r, "snapshot_s"), 1.0);
  EXPECT_NE(get(r, "stop").find("RemoteError"), std::string::npos) << show(r);
  EXPECT_LT(num(r, "stop_s"), 1.0);
  EXPECT_EQ(get(r, "kill_flag"), "set");  // the local stop happens whatever the server does
  EXPECT_NE(get(r, "last_error").find("command timeout"), std::string::npos) << show(r);
}

extern "C" void on_test_signal(int) {}

// A caught signal (a handler without SA_RESTART, as mpt's stop handlers) ends a blocked request at
// once, even with a long command_timeout: EINTR is not retried.
TEST(RedisHostileTest, ASignalEndsABlockedRequest) {
  FakeServer trickler(trickle_forever);
  const Report r = in_child(
      [&](const Put& put) {
        struct sigaction sa {};
        sa.sa_handler = on_test_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        ::sigaction(SIGUSR1, &sa, nullptr);
        const pthread_t self = ::pthread_self();
        std::thread kicker([self] {
          std::this_thread::sleep_for(300ms);
          ::pthread_kill(self, SIGUSR1);
        });
        RemoteOptions o;
        o.command_timeout = 10s;
        const auto t0 = Clock::now();
        try {
          (void)RemoteThrottle::connect(trickler.url("x"), 10, 1s, o);
          put("error", "(connected)");
        } catch (const RemoteError& e) {
          put("error", e.what());
        }
        put("seconds", std::to_string(seconds_since(t0)));
        kicker.join();
      },
      30s);
  std::printf("SIGUSR1 after 300 ms into a request (command_timeout 10 s):\n%s", show(r).c_str());
  ASSERT_EQ(get(r, "timeout"), "") << "the request went on after the signal for 30 s";
  EXPECT_LT(num(r, "seconds"), 1.0);
  EXPECT_NE(get(r, "error").find("interrupted by a signal"), std::string::npos) << show(r);
}

// `mpt stat` against a trickling server fails after the command timeout; `mpt stat --watch` and
// `mpt run --backend` behind a proxy that starts trickling end promptly on SIGTERM.
TEST(RedisHostileTest, MptRunAndStatEndPromptlyOnATricklingServer) {
  FakeServer trickler(trickle_forever);
  auto t0 = Clock::now();
  const test::ProgramResult stat = test::run_mpt({"stat", trickler.url("x")}, 20s);
  int rc = stat.code;
  const double stat_s = seconds_since(t0);
  std::printf("mpt stat on a trickling server: exit %d after %.2f s: %s", rc, stat_s,
              (stat.out + stat.err).c_str());
  EXPECT_EQ(rc, 1);
  EXPECT_LT(stat_s, 2.0);

  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  {
    RemoteThrottle t = RemoteThrottle::connect(server.url("watched"), 100, 1s);
    t.start();
  }
  TrickleProxy proxy(server.port(), 300);
  test::MptProcess watch({"stat", "--watch", "0.1", proxy.url("watched")});
  std::this_thread::sleep_for(500ms);
  proxy.trickle(true);
  std::this_thread::sleep_for(300ms);
  t0 = Clock::now();
  watch.signal(SIGTERM);
  const test::ProgramResult watched = watch.wait(20s);
  rc = watched.code;
  const double watch_s = seconds_since(t0);
  const std::string watch_out = watched.out + watched.err;
  std::printf("mpt stat --watch, trickling, SIGTERM: exit %d after %.2f s: ...%s", rc, watch_s,
              watch_out.substr(watch_out.size() > 300 ? watch_out.size() - 300 : 0).c_str());
  EXPECT_GE(rc, 0);
  EXPECT_LT(watch_s, 1.5);

  proxy.trickle(false);
  test::MptProcess run(
      {"run", "--backend", proxy.url("run"), "--rate", "100", "--workers", "2", "--seconds", "30"});
  std::this_thread::sleep_for(700ms);
  proxy.trickle(true);
  std::this_thread::sleep_for(400ms);
  t0 = Clock::now();
  run.signal(SIGTERM);
  const test::ProgramResult ran = run.wait(20s);
  rc = ran.code;
  const double run_s = seconds_since(t0);
  std::printf("mpt run --backend, trickling, SIGTERM: exit %d after %.2f s: %s", rc, run_s,
              (ran.out + ran.err).c_str());
  EXPECT_GE(rc, 0);
  EXPECT_LT(run_s, 2.0);
}

// ---- 3. name resolution is bounded by connect_timeout ------------------------------------------

// In a mount namespace of its own, the child's /etc/resolv.conf names a UDP socket on loopback
// that reads nothing and answers nothing (and nsswitch.conf says "files dns"): the lookup of a
// name that is not in /etc/hosts would take the resolver's 3 x 10 s. connect() gives up after
// connect_timeout.
TEST(RedisHostileTest, NameResolutionIsBoundedByTheConnectTimeout) {
  const Report r = in_child(
      [](const Put& put) {
        if (::unshare(CLONE_NEWNS) != 0) {
          put("skip", std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno));
          return;
        }
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
          put("skip", std::string("mount --make-rprivate /: ") + std::strerror(errno));
          return;
        }
        const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(53);
        const std::string ip = "127.53." + std::to_string(::getpid() % 250 + 1) + ".1";
        ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
        if (::bind(udp, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
          put("skip", "bind " + ip + ":53: " + std::strerror(errno));
          return;
        }
        const std::string dir = "/tmp/mpt-resolv-" + std::to_string(::getpid());
        ::mkdir(dir.c_str(), 0700);
        std::ofstream(dir + "/resolv.conf")
            << "nameserver " << ip << "\noptions timeout:10 attempts:3\n";
        std::ofstream(dir + "/nsswitch.conf") << "hosts: files dns\n";
        for (const char* f : {"resolv.conf", "nsswitch.conf"}) {
          const std::string from = dir + "/" + f, to = std::string("/etc/") + f;
          if (::mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) != 0) {
            put("skip", "bind mount " + to + ": " + std::strerror(errno));
            return;
          }
          ::unlink(from.c_str());
        }
        ::rmdir(dir.c_str());
        RemoteOptions o;
        o.connect_timeout = 500ms;
        const auto t0 = Clock::now();
        try {
          (void)RemoteThrottle::connect("redis://mpt-never-resolves.example.com:6379/x", 10, 1s, o);
          put("error", "(connected)");
        } catch (const RemoteError& e) {
          put("error", e.what());
        }
        put("seconds", std::to_string(seconds_since(t0)));
        char b[512];
        put("queried", ::recv(udp, b, sizeof b, MSG_DONTWAIT) > 0 ? "1" : "0");
      },
      90s);
  if (!get(r, "skip").empty()) GTEST_SKIP() << "no namespace for the test: " << get(r, "skip");
  std::printf("connect() with a resolver that never answers, connect_timeout 500 ms:\n%s",
              show(r).c_str());
  ASSERT_EQ(get(r, "timeout"), "") << "connect() still resolving after 90 s";
  if (get(r, "queried") != "1")
    GTEST_SKIP() << "the lookup did not reach the silent nameserver (nscd? another NSS module?)";
  EXPECT_LT(num(r, "seconds"), 1.0);
  EXPECT_GE(num(r, "seconds"), 0.45);
  EXPECT_NE(get(r, "error").find("timed out"), std::string::npos) << show(r);
  EXPECT_NE(get(r, "error").find("mpt-never-resolves.example.com"), std::string::npos);
}

// ---- 4. every failed connection closes its socket ----------------------------------------------

TEST(RedisHostileTest, FailedConnectsCloseTheirSockets) {
  FakeServer bad_init(answering("+OK\r\n"));  // "unexpected reply to init"
  FakeServer refuses([](FakeServer& s, int fd) {
    std::string buf;
    while (s.read_command(fd, buf))
      if (!FakeServer::send_all(fd, "-WRONGPASS invalid username-password pair\r\n")) return;
  });
  FakeServer hangs_up([](FakeServer& s, int fd) {
    std::string buf;
    (void)s.read_command(fd, buf);
  });
  FakeServer garbage(answering("?what\r\n"));
  FakeServer too_big(answering("$1500000\r\n" + std::string(1'500'000, 'x') + "\r\n"));
  FakeServer silent([](FakeServer& s, int fd) {
    std::string buf;
    (void)s.read_command(fd, buf);
    s.wait_readable(fd);
  });
  const int nobody = test::free_port();
  const Report r = in_child(
      [&](const Put& put) {
        const int before = count_fds();
        struct Case {
          const char* name;
          std::string url;
          int times;
        };
        const std::vector<Case> cases = {
            {"bad_init", bad_init.url("x"), 200},
            {"auth_refused", refuses.url("x", ":pw"), 50},
            {"hangs_up", hangs_up.url("x"), 50},
            {"garbage", garbage.url("x"), 50},
            {"too_big", too_big.url("x"), 20},
            {"silent", silent.url("x"), 20},
            {"nobody", "redis://127.0.0.1:" + std::to_string(nobody) + "/x", 50},
        };
        RemoteOptions o;
        o.command_timeout = 50ms;
        for (const auto& c : cases) {
          int failed = 0;
          std::string last;
          for (int i = 0; i < c.times; ++i) {
            try {
              (void)RemoteThrottle::connect(c.url, 10, 1s, o);
            } catch (const RemoteError& e) {
              ++failed;
              last = e.what();
            }
          }
          put(std::string(c.name) + "_failed",
              std::to_string(failed) + "/" + std::to_string(c.times) + ": " + last);
          put(std::string(c.name) + "_fds", std::to_string(count_fds()));
        }
        put("fds_before", std::to_string(before));
        put("fds_after", std::to_string(count_fds()));
      },
      120s);
  std::printf("failing connects:\n%s", show(r).c_str());
  ASSERT_EQ(get(r, "timeout"), "") << show(r);
  EXPECT_EQ(get(r, "fds_after"), get(r, "fds_before")) << show(r);
  EXPECT_EQ(get(r, "bad_init_failed").rfind("200/200: ", 0), 0u) << show(r);
  EXPECT_NE(get(r, "bad_init_failed").find("unexpected reply to init"), std::string::npos);
  for (const char* c : {"auth_refused", "hangs_up", "garbage", "too_big", "silent", "nobody"})
    EXPECT_NE(get(r, std::string(c) + "_failed").find("/"), std::string::npos) << c;
}

// ---- 5. reply sizes are bounded ----------------------------------------------------------------

TEST(RedisHostileTest, HugeRepliesAreRefusedWithoutTheMemory) {
  // A 100 MB bulk string, streamed for real.
  FakeServer bulk([](FakeServer& s, int fd) {
    std::string buf;
    if (!s.read_command(fd, buf) || !FakeServer::send_all(fd, "$104857600\r\n")) return;
    const std::string chunk(1 << 16, 'x');
    for (int i = 0; i < 1600; ++i)
      if (s.stopping() || !FakeServer::send_all(fd, chunk)) return;
    (void)FakeServer::send_all(fd, "\r\n");
    s.wait_readable(fd, 5000);
  });
  // An array that claims 2e9 elements, then a million of them.
  FakeServer array([](FakeServer& s, int fd) {
    std::string buf;
    if (!s.read_command(fd, buf) || !FakeServer::send_all(fd, "*2000000000\r\n")) return;
    std::string many;
    for (int i = 0; i < 16384; ++i)
      many += ":1\r\n";
    for (int i = 0; i < 64; ++i)
      if (s.stopping() || !FakeServer::send_all(fd, many)) return;
    s.wait_readable(fd, 5000);
  });
  // Arrays of 100,000 elements nested as deep as they go, each starting another.
  FakeServer nested([](FakeServer& s, int fd) {
    std::string buf;
    if (!s.read_command(fd, buf)) return;
    std::string deep;
    for (int i = 0; i < 10000; ++i)
      deep += "*100000\r\n";
    (void)FakeServer::send_all(fd, deep);
    s.wait_readable(fd, 5000);
  });
  for (auto* server : {&bulk, &array, &nested}) {
    const Report r = in_child(
        [&](const Put& put) {
          const long before = vm_hwm_kib();
          const auto t0 = Clock::now();
          try {
            (void)RemoteThrottle::connect(server->url("x"), 10);
            put("error", "(connected)");
          } catch (const RemoteError& e) {
            put("error", e.what());
            put("code", std::to_string(static_cast<int>(e.code())));
          }
          put("seconds", std::to_string(seconds_since(t0)));
          put("peak_growth_kib", std::to_string(vm_hwm_kib() - before));
        },
        60s);
    std::printf("a hostile reply:\n%s", show(r).c_str());
    ASSERT_EQ(get(r, "timeout"), "") << show(r);
    EXPECT_LT(num(r, "peak_growth_kib"), 16 * 1024) << show(r);
    EXPECT_NE(get(r, "error").find("reply"), std::string::npos) << show(r);
    EXPECT_EQ(get(r, "code"), std::to_string(static_cast<int>(ErrorCode::kIncompatible)))
        << show(r);
  }
}

}  // namespace
}  // namespace mpt
