// mpt/event.hpp — a process-shared event flag on a futex (Python's multiprocessing.Event).
//
// An Event is a handle on one 32-bit word in shared memory: 0 = clear, 1 = set. set() wakes every
// waiter; wait() sleeps in the kernel (FUTEX_WAIT_BITSET with an absolute CLOCK_MONOTONIC deadline)
// until the flag is set. The word lives in a segment of its own (create/open/anonymous) or inside
// another object's segment (Throttle::kill_flag()); the handle keeps that segment mapped.
//
// Memory ordering: set() is a release, is_set()/wait() are acquires: what a process wrote before
// set() is visible to a process after its wait() or is_set() returned true.
// Safe for concurrent use by threads and processes; is_set() may be stale on return.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "mpt/segment.hpp"

namespace mpt {

class Event {
 public:
  // A named event (/dev/shm/mpt.<name>); see Segment::create for errors.
  static Event create(std::string_view name, const CreateOptions& options = {});
  static Event open(std::string_view name, const OpenOptions& options = {});
  // Shared with children forked after this call.
  static Event anonymous();

  // A handle on `word` inside `segment` (for objects that embed an event).
  Event(std::shared_ptr<Segment> segment, std::atomic<std::uint32_t>* word) noexcept
      : segment_(std::move(segment)), word_(word) {}

  // Event::set(): sets the flag and wakes every waiter. Never blocks.
  void set() noexcept;
  // Event::clear(): clears the flag. Never blocks.
  void clear() noexcept;
  // Event::is_set(): never blocks; may be stale on return.
  [[nodiscard]] bool is_set() const noexcept;

  // Event::wait()
  // Blocks until the flag is set (returns true) or the timeout passes (returns false). No timeout
  // waits forever; a zero or negative timeout only checks the flag. Signals do not end the wait.
  bool wait(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) const noexcept;
  // Event::wait_until(): the same with an absolute steady_clock deadline.
  bool wait_until(std::chrono::steady_clock::time_point deadline) const noexcept;

  const std::shared_ptr<Segment>& segment() const noexcept { return segment_; }

 private:
  std::shared_ptr<Segment> segment_;
  std::atomic<std::uint32_t>* word_;
};

}  // namespace mpt
