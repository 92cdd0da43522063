// tests/chaos/scribbler.cpp — mpt_chaos_scribbler: the chaos harness's scribbler victim. A process
// that may write into a live throttle can make its counts nonsense, but it must not crash, hang
// past stop(), or make any process touch memory outside the segment (docs/reliability.md,
// "Security").
//
// Each round makes a fresh named throttle (hardcap limit, one or none at random, 1,000 to
// 100,000/s), starts 3 workers in the seed's loop (await_fuel with a timeout, latest(),
// snapshot()), forks a scribbler that writes random 64-bit words (a quarter of them 0, a quarter
// small values) at random offsets of the segment file, header and body, one every 20-80 us for a
// random 0-3 ms, kills it, then calls stop(). Checks: stop() returns within 2 s; every worker exits
// 0 within 2 s of it (none by a signal, none hung); the parent, which read the throttle throughout,
// is alive.
//
// usage: mpt_chaos_scribbler [--rounds N] [--seed X]    (defaults 1000, time)
// Prints what it did; exits 1 on any violation, 2 on bad arguments.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mpt/segment.hpp"
#include "mpt/throttle.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Waits up to `limit` for pid; kills it on timeout. Returns its exit code, 128 + signal, or -1
// when it had to be killed (a hang).
int reap(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  int status = 0;
  while (Clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(1ms);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// Words the scribblers wrote, in memory shared with them.
std::atomic<std::uint64_t>* g_written = nullptr;

[[noreturn]] void scribble(const std::string& name, std::uint64_t seed) {
  const std::string path = mpt::Segment::path_for(name);
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) _exit(3);
  const auto size = static_cast<std::size_t>(st.st_size);
  auto* p =
      static_cast<unsigned char*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (p == MAP_FAILED) _exit(3);
  std::mt19937_64 rng(seed);
  for (;;) {  // until killed
    const std::size_t at = (rng() % (size / 8)) * 8;
    std::uint64_t v = rng();
    if (v % 4 == 0) v = 0;
    if (v % 4 == 1) v &= 0xff;
    std::memcpy(p + at, &v, sizeof v);
    g_written->fetch_add(1);
    std::this_thread::sleep_for(std::chrono::microseconds(20 + rng() % 60));
  }
}

struct Totals {
  int rounds = 0;
  int violations = 0;
  int by_hardcap[3] = {0, 0, 0};
  double worst_stop_s = 0;
};

void violation(Totals& t, std::uint64_t seed, int round, const std::string& what) {
  ++t.violations;
  std::fprintf(stderr, "VIOLATION: round %d (seed %llu): %s\n", round,
               static_cast<unsigned long long>(seed), what.c_str());
}

void one_round(Totals& tot, std::mt19937_64& rng, std::uint64_t seed, int round) {
  const auto hardcap = static_cast<mpt::Hardcap>(rng() % 3);
  const std::int64_t rate = 1000 * static_cast<std::int64_t>(1 + rng() % 100);
  const std::string name =
      "chaos-scribble-" + std::to_string(getpid()) + "-" + std::to_string(round);
  mpt::ThrottleOptions o;
  o.hardcap = hardcap;
  o.auto_calibrate = false;
  mpt::Throttle t = mpt::Throttle::create(name, rate, std::chrono::seconds(1), o);
  std::vector<pid_t> workers;
  for (int i = 0; i < 3; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      auto kill_flag = t.kill_flag();
      while (!kill_flag.is_set()) {
        (void)t.await_fuel(std::chrono::milliseconds(5));
        (void)t.latest();
        (void)t.snapshot();
      }
      _exit(0);
    }
    workers.push_back(pid);
  }
  t.start();
  const pid_t scribbler = fork();
  if (scribbler == 0) scribble(name, rng());
  const auto until = Clock::now() + std::chrono::microseconds(rng() % 3000);
  while (Clock::now() < until) {
    (void)t.latest();
    (void)t.mean();
  }
  kill(scribbler, SIGKILL);
  waitpid(scribbler, nullptr, 0);
  const auto t0 = Clock::now();
  (void)t.stop();
  const double stop_s = std::chrono::duration<double>(Clock::now() - t0).count();
  tot.worst_stop_s = std::max(tot.worst_stop_s, stop_s);
  if (stop_s > 2.0) violation(tot, seed, round, "stop() took " + std::to_string(stop_s) + " s");
  for (pid_t w : workers) {
    const int rc = reap(w, 2s);
    if (rc == -1) violation(tot, seed, round, "a worker hung past stop()");
    if (rc > 128)
      violation(tot, seed, round, "a worker died of signal " + std::to_string(rc - 128));
    if (rc > 0 && rc < 128) violation(tot, seed, round, "a worker exited " + std::to_string(rc));
  }
  mpt::Throttle::remove(name);
  ++tot.rounds;
  ++tot.by_hardcap[static_cast<int>(hardcap)];
}

bool parse_u64(const char* s, std::uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-') return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t rounds = 1000;
  std::uint64_t seed = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--rounds" && has_value && parse_u64(argv[i + 1], &rounds) && rounds > 0) {
      ++i;
    } else if (a == "--seed" && has_value && parse_u64(argv[i + 1], &seed)) {
      ++i;
    } else {
      std::fprintf(stderr, "usage: mpt_chaos_scribbler [--rounds N] [--seed X]\n");
      return 2;
    }
  }
  std::printf("mpt_chaos_scribbler: %llu rounds, seed %llu\n",
              static_cast<unsigned long long>(rounds), static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  void* shared = mmap(nullptr, sizeof(std::atomic<std::uint64_t>), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return 1;
  g_written = new (shared) std::atomic<std::uint64_t>(0);
  Totals tot;
  for (std::uint64_t r = 0; r < rounds; ++r)
    one_round(tot, rng, seed, static_cast<int>(r));
  const auto written = static_cast<unsigned long long>(g_written->load());
  std::printf(
      "rounds %d (limit %d, one %d, none %d), words written %llu, violations %d, slowest "
      "stop() %.3f s\n",
      tot.rounds, tot.by_hardcap[0], tot.by_hardcap[1], tot.by_hardcap[2], written, tot.violations,
      tot.worst_stop_s);
  if (written < static_cast<unsigned long long>(tot.rounds)) {
    std::fprintf(stderr, "VIOLATION: %llu words written in %d rounds: the scribbler barely ran\n",
                 written, tot.rounds);
    return 1;
  }
  return tot.violations == 0 ? 0 : 1;
}
