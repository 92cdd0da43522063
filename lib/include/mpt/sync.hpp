// mpt/sync.hpp — process-shared Lock, Semaphore and Condition (Python's multiprocessing.Lock,
// Semaphore and Condition). Event is in mpt/event.hpp.
//
// Each object lives in a segment of its own kind (SegmentKind::kLock, kSemaphore, kCondition) and
// is built on glibc's process-shared primitives:
//   Lock       a robust PTHREAD_PROCESS_SHARED mutex (PTHREAD_MUTEX_ROBUST). When the process
//              holding it dies, the next locker gets it with LockStatus::kOwnerDied, and the lock
//              stays usable (pthread_mutex_consistent is called for you). What the dead owner was
//              protecting may be half-updated: kOwnerDied is your cue to repair it.
//   Semaphore  a sem_t with pshared = 1. Units a dead process held are not given back.
//   Condition  a pthread condition variable (pshared, CLOCK_MONOTONIC) with its own robust mutex.
//
// Lifetime: create(name) makes /dev/shm/mpt.<name>, which the creating process unlinks when it
// drops its last handle (see Segment); open(name) attaches from any process of the same user;
// anonymous() is shared with children forked after it. Handles are cheap to copy (they share the
// mapping). Timeouts are std::chrono durations on CLOCK_MONOTONIC; zero or negative only tries.
//
// Memory ordering: unlocking a Lock (or releasing a Semaphore) happens-before the next lock (or
// acquire) that sees it, in any process.
// Safe for concurrent use by threads and processes.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "mpt/segment.hpp"

namespace mpt {

// The outcome of taking a Lock.
enum class LockStatus {
  kAcquired,   // the caller owns the lock
  kOwnerDied,  // the caller owns the lock; its previous owner died holding it (state may be torn)
  kTimeout,    // the caller does not own the lock (try_lock / try_lock_for only)
};

// "acquired", "owner died", "timeout".
const char* to_string(LockStatus status) noexcept;

class Lock {
 public:
  static Lock create(std::string_view name, const CreateOptions& options = {});
  static Lock open(std::string_view name, const OpenOptions& options = {});
  static Lock anonymous();

  // Lock::lock()
  // Blocks until the caller owns the lock. Returns kAcquired, or kOwnerDied when the previous
  // owner died holding it (the lock is made consistent again; repair what it protects). Never
  // returns kTimeout. Locking a lock the calling thread already holds deadlocks (not recursive).
  // Satisfies BasicLockable, so std::lock_guard / std::unique_lock work (ignoring the status).
  LockStatus lock();
  // Lock::try_lock(): never blocks; kTimeout when another owner holds it.
  [[nodiscard]] LockStatus try_lock();
  // Lock::try_lock_for(): blocks up to `timeout` (CLOCK_MONOTONIC); kTimeout if not taken.
  [[nodiscard]] LockStatus try_lock_for(std::chrono::nanoseconds timeout);
  // Lock::unlock(): the caller must own the lock (else SystemError with EPERM).
  void unlock();

  const std::shared_ptr<Segment>& segment() const noexcept { return segment_; }

 private:
  Lock(std::shared_ptr<Segment> segment, void* mutex) : segment_(std::move(segment)), m_(mutex) {}
  std::shared_ptr<Segment> segment_;
  void* m_;  // pthread_mutex_t in shared memory
};

// RAII: locks in the constructor (blocking), unlocks in the destructor. recovered() tells whether
// the previous owner died holding the lock.
class LockGuard {
 public:
  explicit LockGuard(Lock& lock) : lock_(lock), status_(lock.lock()) {}
  ~LockGuard() { lock_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;
  bool recovered() const noexcept { return status_ == LockStatus::kOwnerDied; }

 private:
  Lock& lock_;
  LockStatus status_;
};

class Semaphore {
 public:
  // `initial` units, 0 to SEM_VALUE_MAX (else InvalidArgument).
  static Semaphore create(std::string_view name, unsigned initial,
                          const CreateOptions& options = {});
  static Semaphore open(std::string_view name, const OpenOptions& options = {});
  static Semaphore anonymous(unsigned initial);

  // Semaphore::acquire(): blocks until a unit is available and takes it. Signals do not end it.
  void acquire();
  // Semaphore::try_acquire(): never blocks; true if a unit was taken.
  [[nodiscard]] bool try_acquire() noexcept;
  // Semaphore::try_acquire_for(): blocks up to `timeout`; true if a unit was taken.
  [[nodiscard]] bool try_acquire_for(std::chrono::nanoseconds timeout) noexcept;
  // Semaphore::release(): gives back `n` units and wakes as many waiters. Never blocks. Throws
  // SystemError (EOVERFLOW) past SEM_VALUE_MAX.
  void release(unsigned n = 1);
  // Semaphore::value(): units available now; may be stale on return.
  [[nodiscard]] int value() const noexcept;

  const std::shared_ptr<Segment>& segment() const noexcept { return segment_; }

 private:
  Semaphore(std::shared_ptr<Segment> segment, void* sem)
      : segment_(std::move(segment)), sem_(sem) {}
  std::shared_ptr<Segment> segment_;
  void* sem_;  // sem_t in shared memory
};

// A condition variable with its own lock, as Python's multiprocessing.Condition(): lock(), then
// wait() (which unlocks while sleeping and locks again before returning), notify(), unlock().
class Condition {
 public:
  static Condition create(std::string_view name, const CreateOptions& options = {});
  static Condition open(std::string_view name, const OpenOptions& options = {});
  static Condition anonymous();

  // Condition::lock() / try_lock_for() / unlock(): the condition's robust lock (see Lock).
  LockStatus lock();
  [[nodiscard]] LockStatus try_lock_for(std::chrono::nanoseconds timeout);
  void unlock();

  // Condition::wait()
  // Precondition: the caller holds the lock. Unlocks, sleeps until notified or the timeout passes
  // (none: forever), locks again. Returns false on timeout, true otherwise (spurious wake-ups are
  // possible: re-check your predicate, or use wait_for). If a process died holding the lock while
  // we slept, the lock is made consistent and the wait returns true.
  bool wait(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  // Condition::wait_for(): waits until pred() is true (returns true) or the timeout passes
  // (returns pred()). Same precondition.
  template <class Pred>
  bool wait_for(Pred pred, std::chrono::nanoseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return pred();
      wait(std::chrono::duration_cast<std::chrono::nanoseconds>(left));
    }
    return true;
  }
  // Condition::notify() / notify_all(): wakes one / every waiter. Never blocks. Holding the lock
  // is not required.
  void notify() noexcept;
  void notify_all() noexcept;

  const std::shared_ptr<Segment>& segment() const noexcept { return segment_; }

 private:
  Condition(std::shared_ptr<Segment> segment, void* s) : segment_(std::move(segment)), s_(s) {}
  std::shared_ptr<Segment> segment_;
  void* s_;  // the body: a robust pthread mutex and a pthread condition variable
};

}  // namespace mpt
