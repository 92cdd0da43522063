// The trust model (README "Security"): a process that can write into a live throttle segment can
// make its counts nonsense, but it must not crash, hang past stop(), or make any process touch
// memory outside the segment. Real workers, a real scribbler writing into the real segment file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
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
  }
}

// The admin lock (start/stop/set_rate) naming a thread that does not exist is taken over at once;
// naming a live thread that never lets go (a stuck process), it delays stop() by its 1 s bound
// only: stop() stops without it and says why; start() refuses with an error.
TEST_P(ScribblerTest, AdminLockNamingAStrangerOrAStuckThreadCannotHangStop) {
  const std::string name = test::unique_name("admin");
  Throttle t = Throttle::create(name, 1000, 1s, opts(GetParam()));
  Mapping m(name);
  std::vector<std::string> warnings;
  const LogHook old = set_log_hook([&](std::string_view w) { warnings.emplace_back(w); });

  m.body()->admin_owner.store(0x3fff0001);  // no thread has this id
  t.start();
  (void)t.stop();
  EXPECT_TRUE(warnings.empty()) << warnings[0];

  const pid_t stuck = fork();
  if (stuck == 0) {
    pause();
    _exit(0);
  }
  const auto pids = fork_workers(t, 2);
  t.start();
  std::this_thread::sleep_for(50ms);
  m.body()->admin_owner.store(static_cast<std::uint32_t>(stuck));
  const auto t0 = std::chrono::steady_clock::now();
  (void)t.stop();
  const auto took = std::chrono::steady_clock::now() - t0;
  set_log_hook(old);
  EXPECT_GE(took, 900ms) << "it waited for the live holder first";
  EXPECT_TRUE(t.kill_flag().is_set());
  EXPECT_EQ(t.state(), ThrottleState::kStopped);
  EXPECT_EQ(reap(pids), "");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("admin lock was held by thread " + std::to_string(stuck)),
            std::string::npos)
      << warnings[0];
  EXPECT_THROW(t.start(), SystemError);
  kill(stuck, SIGKILL);
  waitpid(stuck, nullptr, 0);
  t.start();  // the holder is gone: taken over
  EXPECT_TRUE(t.running());
  (void)t.stop();
}

INSTANTIATE_TEST_SUITE_P(Hardcaps, ScribblerTest,
                         ::testing::Values(Hardcap::kLimit, Hardcap::kOne, Hardcap::kNone),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace mpt
