// Internal: the layout of a dict segment's body (after the segment header), shared by
// lib/src/mp/shared_dict.cpp and the tests that look inside it. ByteDict::open() checks magic and
// geometry against the file's size before using any of it.
//
// After the Shared block, 64-byte aligned each: `capacity + 1` slots of slot_bytes (a SlotHead,
// then max_key_bytes of key, then max_value_bytes of value), the index (`buckets` u32 words: 0
// empty, 1 deleted, n + 2 slot n) and the free stack (`capacity + 1` u32 slot numbers).
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "mpt/shared_dict.hpp"

namespace mpt {

namespace detail {
inline constexpr std::uint32_t kDictMagic = 0x54434944;  // "DICT"

// One entry. stamp == 0: the slot is free; otherwise the generation at which it was published.
// The stamp is stored last (release), so a stamped slot is always whole.
struct DictSlotHead {
  std::atomic<std::uint64_t> stamp;
  std::uint64_t hash;
  std::uint32_t key_len;
  std::uint32_t value_len;
};
static_assert(sizeof(DictSlotHead) == 24);
}  // namespace detail

struct ByteDict::Shared {
  std::uint32_t magic;
  std::uint32_t reserved;
  std::uint64_t capacity;  // entries; there are capacity + 1 slots
  std::uint64_t max_key_bytes;
  std::uint64_t max_value_bytes;
  std::uint64_t slot_bytes;
  std::uint64_t buckets;  // index words, a power of two >= 2 * capacity
  alignas(64) pthread_mutex_t mutex;
  // Written only with the mutex held. generation, live, deleted and free_top are derived from the
  // slots and rebuilt by a process that finds the mutex's owner dead.
  alignas(64) std::uint64_t generation;  // the last stamp given
  std::uint64_t live;                    // entries
  std::uint64_t deleted;                 // index words marking a deleted entry
  std::uint64_t free_top;                // free slots on the stack
  std::atomic<std::uint64_t> recoveries;
};

}  // namespace mpt
