// Internal: the layout of a queue segment's body (after the segment header), shared by
// lib/src/queue.cpp and the tests that corrupt it on purpose. Queue::open() checks magic,
// capacity, max_message_bytes and slot_bytes against the file's size before using any of it.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "mpt/queue.hpp"

namespace mpt {

namespace detail {
inline constexpr std::uint32_t kQueueMagic = 0x55455551;  // "QQUE"
}  // namespace detail

// The queue's layout after the segment header. Slots follow at kSlotsOffset.
struct Queue::Shared {
  std::uint32_t magic;
  std::uint32_t reserved;
  std::uint64_t capacity;           // messages
  std::uint64_t slot_bytes;         // kSlotHeader + max_message_bytes, rounded up to 64
  std::uint64_t max_message_bytes;  //
  alignas(64) pthread_mutex_t mutex;
  // Written only with the mutex held; each operation commits with one store.
  alignas(64) std::atomic<std::uint64_t> put_count;
  std::atomic<std::uint64_t> get_count;
  std::atomic<std::uint32_t> closed;
  // Futex words bumped (with the mutex held) when a message arrives / a slot frees up; waiter
  // counts let put/get skip the wake-up system call when nobody sleeps.
  alignas(64) std::atomic<std::uint32_t> not_empty_seq;
  std::atomic<std::uint32_t> not_empty_waiters;
  alignas(64) std::atomic<std::uint32_t> not_full_seq;
  std::atomic<std::uint32_t> not_full_waiters;
};

}  // namespace mpt
