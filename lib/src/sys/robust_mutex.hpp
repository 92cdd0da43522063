// Internal: a robust, process-shared pthread mutex in shared memory (Lock, Condition, Queue).
#pragma once

#include <pthread.h>

#include <cstdint>

namespace mpt::detail {

// Initialises *m as PTHREAD_PROCESS_SHARED + PTHREAD_MUTEX_ROBUST. Returns 0 or an errno value.
int robust_mutex_init(pthread_mutex_t* m) noexcept;

enum class RobustLock { kAcquired, kOwnerDied, kTimeout };

// Locks *m; deadline_ns is an absolute CLOCK_MONOTONIC time, or kForever (futex.hpp). On
// EOWNERDEAD the mutex is made consistent and kOwnerDied returned (the caller owns it). Other
// errors are returned as kTimeout only for ETIMEDOUT; anything else throws SystemError naming
// `what`.
RobustLock robust_mutex_lock(pthread_mutex_t* m, std::int64_t deadline_ns, const char* what);

}  // namespace mpt::detail
