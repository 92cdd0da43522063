#include "mpt/event.hpp"

#include <climits>
#include <new>

#include "clock.hpp"
#include "futex.hpp"
#include "mpt/error.hpp"

namespace mpt {

namespace {

constexpr std::size_t kEventSize = Segment::kBodyOffset + 64;

void init_event(void* data, std::size_t) {
  new (static_cast<char*>(data) + Segment::kBodyOffset) std::atomic<std::uint32_t>(0);
}

Event from_segment(std::shared_ptr<Segment> seg) {
  auto* w = static_cast<std::atomic<std::uint32_t>*>(seg->body());
  return Event(std::move(seg), w);
}

}  // namespace

Event Event::create(std::string_view name, const CreateOptions& options) {
  return from_segment(Segment::create(name, SegmentKind::kEvent, kEventSize, init_event, options));
}

Event Event::open(std::string_view name, const OpenOptions& options) {
  auto seg = Segment::open(name, SegmentKind::kEvent, options);
  if (seg->size_bytes() < kEventSize) {
    throw IncompatibleSegment("segment '" + std::string(name) + "' is too small for an event (" +
                              std::to_string(seg->size_bytes()) + " bytes)");
  }
  return from_segment(std::move(seg));
}

Event Event::anonymous() {
  return from_segment(Segment::anonymous(SegmentKind::kEvent, kEventSize, init_event));
}

void Event::set() noexcept {
  if (word_->exchange(1, std::memory_order_acq_rel) == 0) detail::futex_wake(word_, INT_MAX);
}

void Event::clear() noexcept {
  word_->store(0, std::memory_order_release);
}

bool Event::is_set() const noexcept {
  return word_->load(std::memory_order_acquire) != 0;
}

bool Event::wait(std::optional<std::chrono::nanoseconds> timeout) const noexcept {
  if (!timeout) return detail::futex_wait_while_equal(word_, 0, detail::kForever);
  const std::int64_t now = detail::mono_ns();
  const std::int64_t t = std::max<std::int64_t>(timeout->count(), 0);
  return detail::futex_wait_while_equal(word_, 0,
                                        t > detail::kForever - now ? detail::kForever : now + t);
}

bool Event::wait_until(std::chrono::steady_clock::time_point deadline) const noexcept {
  const std::int64_t d = deadline == std::chrono::steady_clock::time_point::max()
                             ? detail::kForever
                             : detail::to_ns(deadline);
  return detail::futex_wait_while_equal(word_, 0, d);
}

}  // namespace mpt
