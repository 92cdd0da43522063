#include "mpt/sync.hpp"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

#include <algorithm>
#include <climits>
#include <new>
#include <string>

#include "clock.hpp"
#include "futex.hpp"
#include "mpt/error.hpp"
#include "robust_mutex.hpp"

namespace mpt {

namespace {

constexpr std::uint32_t kBodyMagicLock = 0x4b434f4c;  // "LOCK"
constexpr std::uint32_t kBodyMagicSem = 0x414d4553;   // "SEMA"
constexpr std::uint32_t kBodyMagicCond = 0x444e4f43;  // "COND"

// Every sync object's body: a magic word (checked on open), then the primitive, 64-byte aligned.
struct alignas(64) LockBody {
  std::uint32_t magic;
  std::uint32_t reserved;
  pthread_mutex_t mutex;
};

struct alignas(64) SemBody {
  std::uint32_t magic;
  std::uint32_t reserved;
  sem_t sem;
};

std::string describe(const std::shared_ptr<Segment>& seg, const char* kind) {
  return seg->anonymous() ? std::string("anonymous ") + kind
                          : std::string(kind) + " '" + seg->name() + "'";
}

std::int64_t deadline_after(std::chrono::nanoseconds timeout) noexcept {
  const std::int64_t now = detail::mono_ns();
  const std::int64_t t = std::max<std::int64_t>(timeout.count(), 0);
  return t > detail::kForever - now ? detail::kForever : now + t;
}

timespec to_timespec(std::int64_t ns) noexcept {
  timespec ts;
  ts.tv_sec = ns / 1'000'000'000;
  ts.tv_nsec = ns % 1'000'000'000;
  return ts;
}

LockStatus to_status(detail::RobustLock r) noexcept {
  switch (r) {
    case detail::RobustLock::kAcquired:
      return LockStatus::kAcquired;
    case detail::RobustLock::kOwnerDied:
      return LockStatus::kOwnerDied;
    case detail::RobustLock::kTimeout:
      break;
  }
  return LockStatus::kTimeout;
}

// Opens a named segment of `kind` and checks that its body is large enough and carries `magic`.
template <class Body>
std::shared_ptr<Segment> open_checked(std::string_view name, SegmentKind kind, std::uint32_t magic,
                                      const OpenOptions& options) {
  auto seg = Segment::open(name, kind, options);
  if (seg->size_bytes() < Segment::kBodyOffset + sizeof(Body) ||
      static_cast<const Body*>(seg->body())->magic != magic) {
    throw IncompatibleSegment(std::string(to_string(kind)) + " '" + std::string(name) +
                              "' has a corrupt or foreign body");
  }
  return seg;
}

}  // namespace

const char* to_string(LockStatus status) noexcept {
  switch (status) {
    case LockStatus::kAcquired:
      return "acquired";
    case LockStatus::kOwnerDied:
      return "owner died";
    case LockStatus::kTimeout:
      return "timeout";
  }
  return "unknown";
}

// --- Lock ---------------------------------------------------------------------------------------

namespace {

void init_lock(void* data, std::size_t) {
  auto* b = new (static_cast<char*>(data) + Segment::kBodyOffset) LockBody{};
  if (int r = detail::robust_mutex_init(&b->mutex); r != 0)
    throw SystemError("lock: pthread_mutex_init failed", r);
  b->magic = kBodyMagicLock;
}

constexpr std::size_t kLockSize = Segment::kBodyOffset + sizeof(LockBody);

}  // namespace

Lock Lock::create(std::string_view name, const CreateOptions& options) {
  auto seg = Segment::create(name, SegmentKind::kLock, kLockSize, init_lock, options);
  auto* b = static_cast<LockBody*>(seg->body());
  return Lock(std::move(seg), &b->mutex);
}

Lock Lock::open(std::string_view name, const OpenOptions& options) {
  auto seg = open_checked<LockBody>(name, SegmentKind::kLock, kBodyMagicLock, options);
  auto* b = static_cast<LockBody*>(seg->body());
  return Lock(std::move(seg), &b->mutex);
}

Lock Lock::anonymous() {
  auto seg = Segment::anonymous(SegmentKind::kLock, kLockSize, init_lock);
  auto* b = static_cast<LockBody*>(seg->body());
  return Lock(std::move(seg), &b->mutex);
}

LockStatus Lock::lock() {
  return to_status(detail::robust_mutex_lock(static_cast<pthread_mutex_t*>(m_), detail::kForever,
                                             describe(segment_, "lock").c_str()));
}

LockStatus Lock::try_lock() {
  return try_lock_for(std::chrono::nanoseconds::zero());
}

LockStatus Lock::try_lock_for(std::chrono::nanoseconds timeout) {
  auto* m = static_cast<pthread_mutex_t*>(m_);
  if (timeout <= std::chrono::nanoseconds::zero()) {
    const int r = pthread_mutex_trylock(m);
    if (r == EBUSY) return LockStatus::kTimeout;
    if (r == 0) return LockStatus::kAcquired;
    if (r != EOWNERDEAD)
      throw SystemError(describe(segment_, "lock") + ": pthread_mutex_trylock failed", r);
    if (int c = pthread_mutex_consistent(m); c != 0)
      throw SystemError(describe(segment_, "lock") + ": pthread_mutex_consistent failed", c);
    return LockStatus::kOwnerDied;
  }
  return to_status(
      detail::robust_mutex_lock(m, deadline_after(timeout), describe(segment_, "lock").c_str()));
}

void Lock::unlock() {
  if (int r = pthread_mutex_unlock(static_cast<pthread_mutex_t*>(m_)); r != 0)
    throw SystemError(describe(segment_, "lock") + ": unlock by a thread that does not own it", r);
}

// --- Semaphore ----------------------------------------------------------------------------------

namespace {

constexpr std::size_t kSemSize = Segment::kBodyOffset + sizeof(SemBody);

Segment::Init init_sem(unsigned initial) {
  return [initial](void* data, std::size_t) {
    auto* b = new (static_cast<char*>(data) + Segment::kBodyOffset) SemBody{};
    if (sem_init(&b->sem, 1, initial) != 0) throw SystemError("semaphore: sem_init failed", errno);
    b->magic = kBodyMagicSem;
  };
}

void check_initial(unsigned initial) {
  if (initial > static_cast<unsigned>(SEM_VALUE_MAX))
    throw InvalidArgument("semaphore: initial value " + std::to_string(initial) +
                          " exceeds SEM_VALUE_MAX (" + std::to_string(SEM_VALUE_MAX) + ")");
}

}  // namespace

Semaphore Semaphore::create(std::string_view name, unsigned initial, const CreateOptions& options) {
  check_initial(initial);
  auto seg = Segment::create(name, SegmentKind::kSemaphore, kSemSize, init_sem(initial), options);
  auto* b = static_cast<SemBody*>(seg->body());
  return Semaphore(std::move(seg), &b->sem);
}

Semaphore Semaphore::open(std::string_view name, const OpenOptions& options) {
  auto seg = open_checked<SemBody>(name, SegmentKind::kSemaphore, kBodyMagicSem, options);
  auto* b = static_cast<SemBody*>(seg->body());
  return Semaphore(std::move(seg), &b->sem);
}

Semaphore Semaphore::anonymous(unsigned initial) {
  check_initial(initial);
  auto seg = Segment::anonymous(SegmentKind::kSemaphore, kSemSize, init_sem(initial));
  auto* b = static_cast<SemBody*>(seg->body());
  return Semaphore(std::move(seg), &b->sem);
}

void Semaphore::acquire() {
  auto* s = static_cast<sem_t*>(sem_);
  while (sem_wait(s) != 0) {
    if (errno != EINTR) throw SystemError(describe(segment_, "semaphore") + ": sem_wait", errno);
  }
}

bool Semaphore::try_acquire() noexcept {
  auto* s = static_cast<sem_t*>(sem_);
  while (sem_trywait(s) != 0) {
    if (errno != EINTR) return false;
  }
  return true;
}

bool Semaphore::try_acquire_for(std::chrono::nanoseconds timeout) noexcept {
  if (timeout <= std::chrono::nanoseconds::zero()) return try_acquire();
  auto* s = static_cast<sem_t*>(sem_);
  const timespec ts = to_timespec(deadline_after(timeout));
  while (sem_clockwait(s, CLOCK_MONOTONIC, &ts) != 0) {
    if (errno != EINTR) return false;
  }
  return true;
}

void Semaphore::release(unsigned n) {
  auto* s = static_cast<sem_t*>(sem_);
  for (unsigned i = 0; i < n; ++i) {
    if (sem_post(s) != 0)
      throw SystemError(describe(segment_, "semaphore") + ": sem_post failed", errno);
  }
}

int Semaphore::value() const noexcept {
  int v = 0;
  sem_getvalue(static_cast<sem_t*>(sem_), &v);
  return v;
}

// --- Condition ----------------------------------------------------------------------------------

namespace {

struct alignas(64) CondBody {
  std::uint32_t magic;
  std::uint32_t reserved;
  pthread_mutex_t mutex;
  pthread_cond_t cond;
};

constexpr std::size_t kCondSize = Segment::kBodyOffset + sizeof(CondBody);

void init_cond(void* data, std::size_t) {
  auto* b = new (static_cast<char*>(data) + Segment::kBodyOffset) CondBody{};
  if (int r = detail::robust_mutex_init(&b->mutex); r != 0)
    throw SystemError("condition: pthread_mutex_init failed", r);
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  const int r = pthread_cond_init(&b->cond, &a);
  pthread_condattr_destroy(&a);
  if (r != 0) throw SystemError("condition: pthread_cond_init failed", r);
  b->magic = kBodyMagicCond;
}

CondBody* body(void* s) noexcept {
  return static_cast<CondBody*>(s);
}

}  // namespace

Condition Condition::create(std::string_view name, const CreateOptions& options) {
  auto seg = Segment::create(name, SegmentKind::kCondition, kCondSize, init_cond, options);
  void* s = seg->body();
  return Condition(std::move(seg), s);
}

Condition Condition::open(std::string_view name, const OpenOptions& options) {
  auto seg = open_checked<CondBody>(name, SegmentKind::kCondition, kBodyMagicCond, options);
  void* s = seg->body();
  return Condition(std::move(seg), s);
}

Condition Condition::anonymous() {
  auto seg = Segment::anonymous(SegmentKind::kCondition, kCondSize, init_cond);
  void* s = seg->body();
  return Condition(std::move(seg), s);
}

LockStatus Condition::lock() {
  return to_status(detail::robust_mutex_lock(&body(s_)->mutex, detail::kForever,
                                             describe(segment_, "condition").c_str()));
}

LockStatus Condition::try_lock_for(std::chrono::nanoseconds timeout) {
  return to_status(detail::robust_mutex_lock(&body(s_)->mutex, deadline_after(timeout),
                                             describe(segment_, "condition").c_str()));
}

void Condition::unlock() {
  if (int r = pthread_mutex_unlock(&body(s_)->mutex); r != 0)
    throw SystemError(describe(segment_, "condition") + ": unlock by a non-owner", r);
}

bool Condition::wait(std::optional<std::chrono::nanoseconds> timeout) {
  int r;
  if (!timeout) {
    r = pthread_cond_wait(&body(s_)->cond, &body(s_)->mutex);
  } else {
    const timespec ts = to_timespec(deadline_after(*timeout));
    r = pthread_cond_timedwait(&body(s_)->cond, &body(s_)->mutex,
                               &ts);  // the cond's clock: CLOCK_MONOTONIC
  }
  if (r == EOWNERDEAD) {
    pthread_mutex_consistent(&body(s_)->mutex);
    return true;
  }
  if (r == ETIMEDOUT) return false;
  if (r != 0) throw SystemError(describe(segment_, "condition") + ": wait failed", r);
  return true;
}

void Condition::notify() noexcept {
  pthread_cond_signal(&body(s_)->cond);
}

void Condition::notify_all() noexcept {
  pthread_cond_broadcast(&body(s_)->cond);
}

}  // namespace mpt
