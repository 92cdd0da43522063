// mpt/shared_record.hpp — one struct in shared memory that every process reads and writes in
// place (a typed Namespace of Python's multiprocessing.Manager, without the server process).
//
//   struct Stats {
//     std::atomic<std::uint64_t> done{0};
//     std::atomic<double> last_latency_s{0};
//     char label[32];                   // plain fields too (behind a lock of your own)
//   };
//   auto ns = mpt::SharedRecord<Stats>::anonymous();   // or create(name) / open(name)
//   ns->done.fetch_add(1);                               // in any process forked after it
//
// T is constructed once, value-initialised (T{}), in a segment of kind SegmentKind::kRecord before
// the segment is published, and never destroyed (so it must be trivially destructible). Fields
// that several processes touch at once should be std::atomic, and lock-free: a std::atomic that
// is not (std::atomic<T>::is_always_lock_free false) is guarded by a lock table private to each
// process, so it is NOT atomic across processes; check it with static_assert. Lock-free fields
// also stay whole when a process is killed at any instruction. Anything else needs a lock of your
// own (mpt::Lock). open() checks that the segment holds a record of sizeof(T) bytes and T's
// alignment: the type itself cannot be checked, so both sides must agree on it.
//
// Lifetime: as for every segment (see Segment); handles are cheap to copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>

#include "mpt/error.hpp"
#include "mpt/segment.hpp"

namespace mpt {

template <class T>
requires std::is_standard_layout_v<T> && std::is_trivially_destructible_v<T> &&
    std::is_default_constructible_v<T> &&(alignof(T) <= 64) class SharedRecord {
 public:
  static SharedRecord create(std::string_view name, const CreateOptions& options = {}) {
    return SharedRecord(Segment::create(name, SegmentKind::kRecord, kTotal, &init, options));
  }
  static SharedRecord anonymous() {
    return SharedRecord(Segment::anonymous(SegmentKind::kRecord, kTotal, &init));
  }
  // SharedRecord::open(): IncompatibleSegment if the record's size or alignment is not T's.
  static SharedRecord open(std::string_view name, const OpenOptions& options = {}) {
    auto seg = Segment::open(name, SegmentKind::kRecord, options);
    const auto* h = static_cast<const Layout*>(seg->body());
    if (seg->size_bytes() != kTotal || h->magic != kMagic || h->size != sizeof(T) ||
        h->align != alignof(T)) {
      throw IncompatibleSegment("record '" + std::string(name) + "' is not a record of " +
                                std::to_string(sizeof(T)) + " bytes aligned to " +
                                std::to_string(alignof(T)));
    }
    return SharedRecord(std::move(seg));
  }

  T* get() const noexcept { return value_; }
  T* operator->() const noexcept { return value_; }
  T& operator*() const noexcept { return *value_; }
  const std::shared_ptr<Segment>& segment() const noexcept { return segment_; }

 private:
  struct Layout {
    std::uint64_t magic;
    std::uint64_t size;
    std::uint64_t align;
  };
  static constexpr std::uint64_t kMagic = 0x44524f43'45524d50ULL;  // "PMRECORD"
  static constexpr std::size_t kValueOffset = Segment::kBodyOffset + 64;
  static constexpr std::size_t kTotal = kValueOffset + (sizeof(T) + 63) / 64 * 64;

  static void init(void* data, std::size_t) {
    new (static_cast<char*>(data) + kValueOffset) T{};
    new (static_cast<char*>(data) + Segment::kBodyOffset) Layout{kMagic, sizeof(T), alignof(T)};
  }
  explicit SharedRecord(std::shared_ptr<Segment> segment)
      : segment_(std::move(segment)),
        value_(std::launder(
            reinterpret_cast<T*>(static_cast<char*>(segment_->data()) + kValueOffset))) {}

  std::shared_ptr<Segment> segment_;
  T* value_;
};

}  // namespace mpt
