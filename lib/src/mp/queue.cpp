#include "mpt/queue.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <new>

#include "clock.hpp"
#include "futex.hpp"
#include "queue_shared.hpp"
#include "robust_mutex.hpp"

namespace mpt {

namespace {

constexpr std::size_t kMaxCapacity = 1u << 20;
constexpr std::size_t kMaxMessageBytes = 64u << 20;
constexpr std::size_t kSlotHeader = 8;  // u64 length

constexpr std::size_t round_up(std::size_t n, std::size_t a) {
  return (n + a - 1) / a * a;
}

}  // namespace

namespace {

constexpr std::size_t kSlotsOffset = round_up(Segment::kBodyOffset + sizeof(Queue::Shared), 64);

}  // namespace

namespace {

struct Geometry {
  std::size_t capacity;
  std::size_t slot_bytes;
  std::size_t max_message_bytes;
  std::size_t total_bytes;
};

Geometry geometry(const QueueOptions& o, const std::string& what) {
  if (o.capacity < 1 || o.capacity > kMaxCapacity)
    throw InvalidArgument(what + ": capacity " + std::to_string(o.capacity) + " is outside 1.." +
                          std::to_string(kMaxCapacity) + " messages");
  if (o.max_message_bytes > kMaxMessageBytes)
    throw InvalidArgument(what + ": max_message_bytes " + std::to_string(o.max_message_bytes) +
                          " exceeds " + std::to_string(kMaxMessageBytes));
  Geometry g;
  g.capacity = o.capacity;
  g.max_message_bytes = o.max_message_bytes;
  g.slot_bytes = round_up(kSlotHeader + o.max_message_bytes, 64);
  if (g.slot_bytes > (kMaxSegmentBytes - kSlotsOffset) / g.capacity)
    throw InvalidArgument(what + ": capacity " + std::to_string(o.capacity) + " x " +
                          std::to_string(g.slot_bytes) + "-byte slots exceeds the " +
                          std::to_string(kMaxSegmentBytes) + "-byte segment limit");
  g.total_bytes = kSlotsOffset + g.capacity * g.slot_bytes;
  return g;
}

Segment::Init init_queue(const Geometry& g) {
  return [g](void* data, std::size_t) {
    auto* s = new (static_cast<char*>(data) + Segment::kBodyOffset) Queue::Shared{};
    if (int r = detail::robust_mutex_init(&s->mutex); r != 0)
      throw SystemError("queue: pthread_mutex_init failed", r);
    s->capacity = g.capacity;
    s->slot_bytes = g.slot_bytes;
    s->max_message_bytes = g.max_message_bytes;
    s->magic = detail::kQueueMagic;
  };
}

std::int64_t deadline_for(std::optional<std::chrono::nanoseconds> timeout) noexcept {
  if (!timeout) return detail::kForever;
  const std::int64_t now = detail::mono_ns();
  const std::int64_t t = std::max<std::int64_t>(timeout->count(), 0);
  return t > detail::kForever - now ? detail::kForever : now + t;
}

// Holds the queue's robust mutex for a scope. A dead previous owner is fine: the state it left
// is consistent by construction (single-store commits).
class Held {
 public:
  Held(pthread_mutex_t* m, const std::string& what) : m_(m) {
    detail::robust_mutex_lock(m, detail::kForever, what.c_str());
  }
  ~Held() { pthread_mutex_unlock(m_); }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;

 private:
  pthread_mutex_t* m_;
};

}  // namespace

Queue::Queue(std::shared_ptr<Segment> segment)
    : segment_(std::move(segment)),
      s_(static_cast<Shared*>(segment_->body())),
      slots_(static_cast<std::byte*>(segment_->data()) + kSlotsOffset),
      capacity_(s_->capacity),
      slot_bytes_(s_->slot_bytes),
      max_message_bytes_(s_->max_message_bytes),
      what_(segment_->anonymous() ? std::string("anonymous queue")
                                  : "queue '" + segment_->name() + "'") {}

Queue Queue::create(std::string_view name, const QueueOptions& options) {
  const Geometry g = geometry(options, "queue '" + std::string(name) + "'");
  return Queue(
      Segment::create(name, SegmentKind::kQueue, g.total_bytes, init_queue(g), options.segment));
}

Queue Queue::anonymous(const QueueOptions& options) {
  const Geometry g = geometry(options, "anonymous queue");
  return Queue(Segment::anonymous(SegmentKind::kQueue, g.total_bytes, init_queue(g)));
}

Queue Queue::open(std::string_view name, const OpenOptions& options) {
  auto seg = Segment::open(name, SegmentKind::kQueue, options);
  const std::string what = "queue '" + std::string(name) + "'";
  if (seg->size_bytes() < kSlotsOffset)
    throw IncompatibleSegment(what + " is too small for a queue");
  const auto* s = static_cast<const Shared*>(seg->body());
  QueueOptions o;
  o.capacity = s->capacity;
  o.max_message_bytes = s->max_message_bytes;
  bool ok = s->magic == detail::kQueueMagic;
  if (ok) {
    try {
      const Geometry g = geometry(o, what);
      ok = g.slot_bytes == s->slot_bytes && g.total_bytes == seg->size_bytes();
    } catch (const InvalidArgument&) {
      ok = false;
    }
  }
  if (!ok) throw IncompatibleSegment(what + " has a corrupt or foreign layout");
  return Queue(std::move(seg));
}

bool Queue::put(std::string_view message, std::optional<std::chrono::nanoseconds> timeout) {
  return put(std::as_bytes(std::span<const char>(message.data(), message.size())), timeout);
}

bool Queue::put(std::span<const std::byte> message,
                std::optional<std::chrono::nanoseconds> timeout) {
  if (message.size() > max_message_bytes_)
    throw InvalidArgument(what_ + ": message of " + std::to_string(message.size()) +
                          " bytes exceeds max_message_bytes " + std::to_string(max_message_bytes_));
  const std::int64_t deadline = deadline_for(timeout);
  for (;;) {
    std::uint32_t seq;
    {
      Held h(&s_->mutex, what_);
      if (s_->closed.load(std::memory_order_relaxed)) return false;
      const std::uint64_t p = s_->put_count.load(std::memory_order_relaxed);
      if (p - s_->get_count.load(std::memory_order_relaxed) < capacity_) {
        std::byte* slot = slots_ + (p % capacity_) * slot_bytes_;
        const std::uint64_t len = message.size();
        std::memcpy(slot, &len, sizeof len);
        if (len) std::memcpy(slot + kSlotHeader, message.data(), len);
        s_->put_count.store(p + 1, std::memory_order_release);  // the commit
        s_->not_empty_seq.fetch_add(1, std::memory_order_release);
        const bool sleepers = s_->not_empty_waiters.load(std::memory_order_relaxed) != 0;
        // Wake after unlocking would be cheaper for the wakee, but waking here keeps the logic
        // simple; the syscall only happens when somebody sleeps.
        if (sleepers) detail::futex_wake(&s_->not_empty_seq, 1);
        return true;
      }
      seq = s_->not_full_seq.load(std::memory_order_relaxed);
      s_->not_full_waiters.fetch_add(1, std::memory_order_relaxed);
    }
    if (deadline != detail::kForever && detail::mono_ns() >= deadline) {
      s_->not_full_waiters.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    detail::futex_wait(&s_->not_full_seq, seq, deadline);
    s_->not_full_waiters.fetch_sub(1, std::memory_order_relaxed);
    if (deadline != detail::kForever && detail::mono_ns() >= deadline) {
      // One last try before giving up (a slot may have freed as the deadline passed).
      return put(message, std::chrono::nanoseconds::zero());
    }
  }
}

bool Queue::get_into(std::vector<std::byte>& out, std::optional<std::chrono::nanoseconds> timeout) {
  const std::int64_t deadline = deadline_for(timeout);
  for (;;) {
    std::uint32_t seq;
    {
      Held h(&s_->mutex, what_);
      const std::uint64_t g = s_->get_count.load(std::memory_order_relaxed);
      if (s_->put_count.load(std::memory_order_relaxed) != g) {
        const std::byte* slot = slots_ + (g % capacity_) * slot_bytes_;
        std::uint64_t len;
        std::memcpy(&len, slot, sizeof len);
        len = std::min<std::uint64_t>(len, max_message_bytes_);  // never read past the slot
        out.resize(len);
        if (len) std::memcpy(out.data(), slot + kSlotHeader, len);
        s_->get_count.store(g + 1, std::memory_order_release);  // the commit
        s_->not_full_seq.fetch_add(1, std::memory_order_release);
        if (s_->not_full_waiters.load(std::memory_order_relaxed) != 0)
          detail::futex_wake(&s_->not_full_seq, 1);
        return true;
      }
      if (s_->closed.load(std::memory_order_relaxed)) return false;
      seq = s_->not_empty_seq.load(std::memory_order_relaxed);
      s_->not_empty_waiters.fetch_add(1, std::memory_order_relaxed);
    }
    if (deadline != detail::kForever && detail::mono_ns() >= deadline) {
      s_->not_empty_waiters.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    detail::futex_wait(&s_->not_empty_seq, seq, deadline);
    s_->not_empty_waiters.fetch_sub(1, std::memory_order_relaxed);
    if (deadline != detail::kForever && detail::mono_ns() >= deadline)
      return get_into(out, std::chrono::nanoseconds::zero());
  }
}

std::optional<std::vector<std::byte>> Queue::get(std::optional<std::chrono::nanoseconds> timeout) {
  std::vector<std::byte> out;
  if (!get_into(out, timeout)) return std::nullopt;
  return out;
}

void Queue::close() {
  {
    Held h(&s_->mutex, what_);
    s_->closed.store(1, std::memory_order_release);
    s_->not_empty_seq.fetch_add(1, std::memory_order_release);
    s_->not_full_seq.fetch_add(1, std::memory_order_release);
  }
  detail::futex_wake(&s_->not_empty_seq, INT_MAX);
  detail::futex_wake(&s_->not_full_seq, INT_MAX);
}

bool Queue::closed() const noexcept {
  return s_->closed.load(std::memory_order_acquire) != 0;
}

std::size_t Queue::size() const noexcept {
  const std::uint64_t g = s_->get_count.load(std::memory_order_acquire);
  const std::uint64_t p = s_->put_count.load(std::memory_order_acquire);
  return p >= g ? static_cast<std::size_t>(p - g) : 0;
}

}  // namespace mpt
