// Internal: the futex wrapper. Shared memory only, so never FUTEX_PRIVATE_FLAG (it would silently
// stop waking waiters in other processes).
#pragma once

#include <atomic>
#include <cstdint>

namespace mpt::detail {

inline constexpr std::int64_t kForever = INT64_MAX;

// Sleeps while *word == expected, until woken or the absolute CLOCK_MONOTONIC deadline (kForever:
// none). Returns 0 when woken, or -EAGAIN (the word differed), -ETIMEDOUT, -EINTR. Callers loop
// and re-check their condition in every case.
int futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
               std::int64_t deadline_ns) noexcept;

// Wakes up to n waiters (INT32_MAX: all). Returns how many were woken, or -errno.
int futex_wake(std::atomic<std::uint32_t>* word, int n) noexcept;

// Waits until *word != expected or the deadline passes; handles EINTR/EAGAIN. Returns false on
// timeout.
bool futex_wait_while_equal(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                            std::int64_t deadline_ns) noexcept;

}  // namespace mpt::detail
