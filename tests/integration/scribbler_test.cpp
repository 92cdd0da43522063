// The trust model (docs/reliability.md, "Security"): a process that can write into a live throttle
// segment can make its counts nonsense, but it must not crash, hang past stop(), or make any
// process touch memory outside the segment. Real workers, a real scribbler writing into the real
// segment file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "mpt/calibration.hpp"
#include "mpt/error.hpp"
#include "mpt/segment.hpp"
#include "mpt/throttle.hpp"
#include "throttle_shared.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

// The segment file of a named throttle, mapped writable as another process of the user would.
class Mapping {
 public:
  explicit Mapping(const std::string& name) {
    const std::string path = Segment::path_for(name);
    const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open " + path);
    struct stat st {};
    fstat(fd, &st);
    size_ = static_cast<std::size_t>(st.st_size);
    p_ = static_cast<std::byte*>(mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    close(fd);
    if (p_ == MAP_FAILED) throw std::runtime_error("cannot map " + path);
  }
  ~Mapping() { munmap(p_, size_); }
  Throttle::Shared* body() const {
    return reinterpret_cast<Throttle::Shared*>(p_ + Segment::kBodyOffset);
  }
  std::byte* data() const { return p_; }
  std::size_t size() const { return size_; }

 private:
  std::byte* p_ = nullptr;
  std::size_t size_ = 0;
};

// Workers in the seed's loop: each exits 0 when the kill flag is set, whatever it was granted.
std::vector<pid_t> fork_workers(Throttle& t, int n) {
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      auto kill = t.kill_flag();
      while (!kill.is_set()) {
        (void)t.await_fuel(5ms);
        (void)t.latest();  // the readers' paths too (`mpt stat --watch`)
        (void)t.snapshot();
      }
      _exit(0);
    }
    pids.push_back(pid);
  }
  return pids;
}

// What became of the workers after stop(): "" when every one exited 0 within 5 s.
std::string reap(const std::vector<pid_t>& pids) {
  std::string bad;
  for (pid_t p : pids) {
    const int rc = test::wait_child(p, 5s);
    if (rc != 0) bad += " pid " + std::to_string(p) + ": " + std::to_string(rc);
  }
  return bad;
}

ThrottleOptions opts(Hardcap h) {
  ThrottleOptions o;
  o.hardcap = h;
  o.auto_calibrate = false;
  return o;
}

class ScribblerTest : public ::testing::TestWithParam<Hardcap> {};

// The writes the adversarial trial named: zero divisors and an out-of-range ring length.
TEST_P(ScribblerTest, ZeroOrHugeRingAndBucketWidthCrashNothing) {
  const std::string name = test::unique_name("zero");
  Throttle t = Throttle::create(name, 10'000, 1s, opts(GetParam()));
  Mapping m(name);
  const auto pids = fork_workers(t, 4);
  t.start();
  std::this_thread::sleep_for(100ms);
  Throttle::Shared* s = m.body();
  std::memset(&s->ring_len, 0, sizeof s->ring_len);
  std::memset(&s->rf_ns, 0, sizeof s->rf_ns);
  std::memset(&s->window_buckets, 0xff, sizeof s->window_buckets);
  std::this_thread::sleep_for(100ms);
  const std::uint32_t huge = 0x7fffffff;
  std::memcpy(&s->ring_len, &huge, sizeof huge);
  (void)t.latest();
  (void)t.snapshot();
  std::this_thread::sleep_for(100ms);
  const std::uint64_t before = t.total();
  const Summary sum = t.stop();
  EXPECT_GE(sum.total, before);
  EXPECT_EQ(reap(pids), "");
  EXPECT_THROW(Throttle::open(name), IncompatibleSegment) << "a corrupt body is refused at open";
}

// Random words at random places in the live segment (header and body) while workers and readers
// run; then stop(): every worker ends, none by a signal, within 5 s.
TEST_P(ScribblerTest, RandomWordsIntoALiveSegmentNeverCrashOrHangPastStop) {
  std::mt19937_64 rng(std::random_device{}());
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string name = test::unique_name("scribble");
    Throttle t = Throttle::create(name, 20'000, 1s, opts(GetParam()));
    Mapping m(name);
    const auto pids = fork_workers(t, 4);
    t.start();
    const auto until = std::chrono::steady_clock::now() + 100ms;
    while (std::chrono::steady_clock::now() < until) {
      const std::size_t words = m.size() / 8;
      const std::size_t at = rng() % words;
      const std::uint64_t v = (rng() % 4 == 0) ? 0 : rng();
      std::memcpy(m.data() + at * 8, &v, sizeof v);
      std::this_thread::sleep_for(1ms);
    }
    (void)t.stop();
    EXPECT_EQ(reap(pids), "");
    // The creator unlinks its name only while the file still carries its id, which the scribbles
    // may have changed: remove it here, so that no test leaves a file behind.
    Throttle::remove(name);
  }
}

// A child that waits to be killed; killed (and reaped, unless told not to) when the guard goes.
class Child {
 public:
  Child() : pid_(fork()) {
    if (pid_ == 0) {
      pause();
      _exit(0);
    }
  }
  ~Child() { end(true); }
  void end(bool reap) {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    if (reap) {
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  std::uint32_t tid() const { return static_cast<std::uint32_t>(pid_); }

 private:
  pid_t pid_;
};

// Waits (up to 10 s) until the single-threaded process pid sleeps in a futex wait.
bool futex_asleep(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  const std::string dir = "/proc/" + std::to_string(pid);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream stat(dir + "/stat"), sc(dir + "/syscall");
    std::string st((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    std::string call;
    sc >> call;
    const auto close = st.rfind(')');
    if (close != std::string::npos && close + 2 < st.size() && st[close + 2] == 'S' &&
        call == std::to_string(SYS_futex)) {
      return true;
    }
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

double seconds_to_stop(Throttle& t) {
  const auto t0 = std::chrono::steady_clock::now();
  (void)t.stop();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The admin lock (start/stop/set_rate) naming a thread that is gone, a zombie (killed mid-call,
// not yet reaped) or no thread at all is taken over at once; naming a live thread that never lets
// go (a stuck process), it delays stop() by its 1 s bound only: stop() stops without it and says
// why; start() refuses with an error until the holder is gone.
TEST_P(ScribblerTest, AdminLockNamingAStrangerOrAStuckThreadCannotHangStop) {
  const std::string name = test::unique_name("admin");
  Throttle t = Throttle::create(name, 1000, 1s, opts(GetParam()));
  Mapping m(name);
  std::vector<std::string> warnings;
  const LogHook old = set_log_hook([&](std::string_view w) { warnings.emplace_back(w); });
  struct Restore {
    LogHook h;
    ~Restore() { set_log_hook(h); }
  } restore{old};

  std::uint32_t gone;
  {
    Child c;
    gone = c.tid();
  }  // killed and reaped: its id names no thread now
  Child zombie;
  zombie.end(false);  // killed, not reaped
  for (const std::uint32_t holder : {0x3fff0001u, gone, zombie.tid()}) {
    SCOPED_TRACE("holder " + std::to_string(holder));
    m.body()->admin_owner.store(holder);
    t.start();
    m.body()->admin_owner.store(holder);
    EXPECT_LT(seconds_to_stop(t), 0.5) << "taken over, not waited for";
  }
  EXPECT_TRUE(warnings.empty()) << warnings.front();

  Child stuck;
  const auto pids = fork_workers(t, 2);
  t.start();
  std::this_thread::sleep_for(50ms);
  m.body()->admin_owner.store(stuck.tid());
  const double took = seconds_to_stop(t);
  EXPECT_GE(took, 0.9) << "it waited for the live holder first";
  EXPECT_LT(took, 3.0) << "and no longer than its bound";
  EXPECT_TRUE(t.kill_flag().is_set());
  EXPECT_EQ(t.state(), ThrottleState::kStopped);
  EXPECT_EQ(reap(pids), "");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("admin lock was held by thread " + std::to_string(stuck.tid())),
            std::string::npos)
      << warnings[0];
  EXPECT_THROW(t.start(), SystemError);
  stuck.end(true);
  t.start();  // the holder is gone: taken over
  EXPECT_TRUE(t.running());
  (void)t.stop();
}

// A waiter asleep without a timeout (its slot an hour away) ends at stop() even when another
// process put wake_seq back so that stop()'s bump lands on the value the waiter slept on.
TEST_P(ScribblerTest, SleeperWithoutTimeoutEndsAtStopEvenIfWakeSeqWasRewound) {
  const std::string name = test::unique_name("rewind");
  Throttle t = Throttle::create(name, 1, 3600s, opts(GetParam()));
  Mapping m(name);
  t.start();
  ASSERT_TRUE(t.has_fuel()) << "the unit start() makes available";
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t waiter = fork();
  if (waiter == 0) {
    close(fds[0]);
    const char c = t.await_fuel() ? 'y' : 'n';  // no timeout: until its slot or stop()
    (void)!write(fds[1], &c, 1);
    _exit(0);
  }
  close(fds[1]);
  ASSERT_TRUE(futex_asleep(waiter)) << "the waiter never went to sleep";
  m.body()->wake_seq.fetch_sub(1);
  (void)t.stop();
  char got = 0;
  pollfd p{fds[0], POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1) << "the waiter still sleeps after stop()";
  ASSERT_EQ(read(fds[0], &got, 1), 1);
  EXPECT_EQ(got, 'n');
  close(fds[0]);
  EXPECT_EQ(test::wait_child(waiter, 5s), 0);
}

INSTANTIATE_TEST_SUITE_P(Hardcaps, ScribblerTest,
                         ::testing::Values(Hardcap::kLimit, Hardcap::kOne, Hardcap::kNone),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace mpt
