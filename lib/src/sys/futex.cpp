#include "futex.hpp"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.hpp"

namespace mpt::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

int futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
               std::int64_t deadline_ns) noexcept {
  timespec ts;
  timespec* tsp = nullptr;
  if (deadline_ns != kForever) {
    if (deadline_ns < 0) deadline_ns = 0;
    ts.tv_sec = deadline_ns / 1'000'000'000;
    ts.tv_nsec = deadline_ns % 1'000'000'000;
    tsp = &ts;
  }
  // FUTEX_WAIT_BITSET takes an absolute timeout on CLOCK_MONOTONIC (no FUTEX_CLOCK_REALTIME).
  long r = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_BITSET, expected,
                   tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
  return r == 0 ? 0 : -errno;
}

int futex_wake(std::atomic<std::uint32_t>* word, int n) noexcept {
  long r = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, n, nullptr,
                   nullptr, 0);
  return r >= 0 ? static_cast<int>(r) : -errno;
}

bool futex_wait_while_equal(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                            std::int64_t deadline_ns) noexcept {
  while (word->load(std::memory_order_acquire) == expected) {
    if (deadline_ns != kForever && mono_ns() >= deadline_ns) return false;
    int r = futex_wait(word, expected, deadline_ns);
    if (r == -ETIMEDOUT) return word->load(std::memory_order_acquire) != expected;
    // 0, -EAGAIN, -EINTR: re-check.
  }
  return true;
}

}  // namespace mpt::detail
