#include "robust_mutex.hpp"

#include <errno.h>
#include <time.h>

#include <string>

#include "futex.hpp"
#include "mpt/error.hpp"

namespace mpt::detail {

int robust_mutex_init(pthread_mutex_t* m) noexcept {
  pthread_mutexattr_t a;
  int r = pthread_mutexattr_init(&a);
  if (r != 0) return r;
  r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  if (r == 0) r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  if (r == 0) r = pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  return r;
}

RobustLock robust_mutex_lock(pthread_mutex_t* m, std::int64_t deadline_ns, const char* what) {
  int r;
  if (deadline_ns == kForever) {
    r = pthread_mutex_lock(m);
  } else {
    timespec ts;
    if (deadline_ns < 0) deadline_ns = 0;
    ts.tv_sec = deadline_ns / 1'000'000'000;
    ts.tv_nsec = deadline_ns % 1'000'000'000;
    r = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
  }
  if (r == 0) return RobustLock::kAcquired;
  if (r == EOWNERDEAD) {
    r = pthread_mutex_consistent(m);
    if (r != 0) {
      pthread_mutex_unlock(m);
      throw SystemError(std::string(what) + ": pthread_mutex_consistent failed", r);
    }
    return RobustLock::kOwnerDied;
  }
  if (r == ETIMEDOUT) return RobustLock::kTimeout;
  throw SystemError(std::string(what) + ": locking its mutex failed", r);
}

}  // namespace mpt::detail
