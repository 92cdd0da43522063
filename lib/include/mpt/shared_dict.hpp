// mpt/shared_dict.hpp — a dictionary in shared memory that any process reads and updates (the
// dict of Python's multiprocessing.Manager, without a server process).
//
//   auto d = mpt::SharedDict<std::string, int>::anonymous({.capacity = 100});
//   d.set("a", 1);                                   // insert_or_assign
//   d.update("hits", [](std::optional<int> v) { return v.value_or(0) + 1; });  // atomic
//   std::optional<int> a = d.get("a");
//   for (const auto& [k, v] : d.items()) ...        // one consistent moment
//
// ByteDict holds keys and values as bytes; SharedDict<K, V> is typed over it through the Queue's
// Codec<T> (mpt/queue.hpp): two keys are the same key when their encodings are the same bytes.
// Capacity is fixed at creation: up to `capacity` entries of at most max_key_bytes and
// max_value_bytes each. A set() that would need a new entry in a full dict throws
// CapacityExceeded, naming the capacity; an oversize key or value throws InvalidArgument naming
// its size and the limit. Nothing is ever truncated.
//
// Layout (segment kind SegmentKind::kDict): a robust process-shared mutex, `capacity + 1` entry
// slots (key, value, hash and a 64-bit stamp), an open-addressing index of slot numbers, and a
// stack of free slots. Every operation, reads included, runs with the mutex held, so a reader
// never sees a torn or half-updated entry and items() reflects one moment.
//
// Crash safety (a process SIGKILLed at any instruction, even inside set or update): the slots are
// the truth and the index, free stack and count are derived from them. A set() writes the new
// entry into a free slot and publishes it with one store of its stamp (a generation number that
// grows with every update); only then does it point the index at it and free the old slot (stamp
// 0). A process that takes the mutex from a dead owner rebuilds the index, the free stack and the
// count from the slots, keeping for each key the slot with the highest stamp. So a killed
// writer's update is either entirely done or not at all, and the dict stays usable; a recovery
// that is itself killed is simply run again by the next locker.
//
// Lifetime: create(name) makes /dev/shm/mpt.<name> (unlinked when the creating process drops its
// last handle, see Segment), open(name) attaches, anonymous() is shared with children forked
// after it. Handles are cheap to copy.
//
// Memory ordering: everything a process wrote before a set() or update() is visible to a process
// whose get() (or items()) returns that value: both hold the mutex.
// Safe for concurrent use by threads and processes. size() may be stale on return. update() runs
// the caller's function with the mutex held: keep it short, and do not touch the same dict in it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mpt/error.hpp"
#include "mpt/queue.hpp"
#include "mpt/segment.hpp"

namespace mpt {

// A set() needed a new entry and the dict already holds `capacity` entries.
class CapacityExceeded : public InvalidArgument {
 public:
  explicit CapacityExceeded(const std::string& what) : InvalidArgument(what) {}
};

struct DictOptions {
  std::size_t capacity = 1024;         // entries, 1..4,194,304
  std::size_t max_key_bytes = 64;      // 1..64 KiB
  std::size_t max_value_bytes = 1024;  // 0..16 MiB; the slots must fit a segment
  CreateOptions segment = {};          // named dicts: mode and persistence
};

using Bytes = std::vector<std::byte>;
using ByteView = std::span<const std::byte>;

class ByteDict {
 public:
  // ByteDict::create() / anonymous()
  // Throws InvalidArgument for a capacity or size out of range (or slots that would not fit in
  // kMaxSegmentBytes), naming the values; segment errors as Segment::create.
  static ByteDict create(std::string_view name, const DictOptions& options = {});
  static ByteDict anonymous(const DictOptions& options = {});
  // ByteDict::open(): also checks the dict's own layout against the segment (IncompatibleSegment).
  static ByteDict open(std::string_view name, const OpenOptions& options = {});

  // The value of `key` into `out` (resized); false, `out` untouched, if there is none.
  bool get(ByteView key, Bytes& out) const;
  std::optional<Bytes> get(ByteView key) const;
  // ByteDict::set(): insert_or_assign. Returns true if the key was new. Throws InvalidArgument for
  // an oversize key or value, CapacityExceeded if the key is new and the dict is full.
  bool set(ByteView key, ByteView value);
  // Removes the key; returns whether it was there.
  bool erase(ByteView key);
  // Removes the key and returns its value, in one step (nullopt, changing nothing, if absent).
  std::optional<Bytes> take(ByteView key);
  bool contains(ByteView key) const;
  // ByteDict::update()
  // Atomic read-modify-write of one key: fn receives the current value (nullptr if none) and
  // either fills `out` and returns true (the new value is stored) or returns false (the key is
  // left as it is). Throws what set() throws; an exception from fn leaves the key unchanged.
  using Updater = std::function<bool(const Bytes* current, Bytes& out)>;
  void update(ByteView key, const Updater& fn);
  std::size_t size() const;
  // Removes every entry. Not atomic as a whole: a process killed part way leaves some entries
  // (each whole, the dict consistent and usable).
  void clear();
  // Every entry, as of one moment (in no particular order).
  std::vector<std::pair<Bytes, Bytes>> items() const;

  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t max_key_bytes() const noexcept { return max_key_bytes_; }
  std::size_t max_value_bytes() const noexcept { return max_value_bytes_; }
  const std::shared_ptr<Segment>& segment() const noexcept { return segment_; }
  // How many times a process took the mutex from a dead owner and rebuilt the dict, since it was
  // made (for tests and reports; may be stale on return).
  std::uint64_t recoveries() const noexcept;

  struct Shared;    // the layout in shared memory (lib/src/mp/shared_dict_layout.hpp)
  struct Geometry;  // internal: the sizes and offsets derived from DictOptions (shared_dict.cpp)

 private:
  class Held;  // the mutex held, and the table as this handle sees it (shared_dict.cpp)
  ByteDict(std::shared_ptr<Segment> segment, const Geometry& geometry);
  std::shared_ptr<Segment> segment_;
  Shared* s_;
  // The geometry, read once when the handle is made (and checked against the segment's size by
  // open()): a scribbled header, slot length or free stack cannot send an operation outside the
  // segment (it can still make answers wrong: see docs/reliability.md on writers of a segment).
  std::size_t capacity_;
  std::size_t max_key_bytes_;
  std::size_t max_value_bytes_;
  std::size_t slot_bytes_;
  std::size_t buckets_;
  std::size_t index_offset_;
  std::size_t free_offset_;
  std::string what_;  // "dict 'name'" for messages
};

// SharedDict<K, V>: ByteDict with keys and values through Codec<K> and Codec<V>.
template <Encodable K, Encodable V>
class SharedDict {
  static_assert(!codec_is_view<K>() && !codec_is_view<V>(),
                "SharedDict needs owning types (std::string, not a view)");

 public:
  static SharedDict create(std::string_view name, const DictOptions& options = {}) {
    return SharedDict(ByteDict::create(name, options));
  }
  static SharedDict anonymous(const DictOptions& options = {}) {
    return SharedDict(ByteDict::anonymous(options));
  }
  static SharedDict open(std::string_view name, const OpenOptions& options = {}) {
    return SharedDict(ByteDict::open(name, options));
  }

  std::optional<V> get(const K& key) const {
    Bytes out;
    if (!bytes_.get(encode(key), out)) return std::nullopt;
    return Codec<V>::decode(ByteView(out));
  }
  bool set(const K& key, const V& value) { return bytes_.set(encode(key), encode(value)); }
  bool insert_or_assign(const K& key, const V& value) { return set(key, value); }
  bool erase(const K& key) { return bytes_.erase(encode(key)); }
  bool contains(const K& key) const { return bytes_.contains(encode(key)); }
  // SharedDict::update(): stores fn(current value or nullopt), atomically; returns what it stored.
  template <class F>
  requires std::is_invocable_r_v<V, F&, std::optional<V>> V update(const K& key, F fn) {
    std::optional<V> stored;
    bytes_.update(encode(key), [&](const Bytes* current, Bytes& out) {
      std::optional<V> old;
      if (current) old = Codec<V>::decode(ByteView(*current));
      stored = fn(std::move(old));
      out = encode(*stored);
      return true;
    });
    return std::move(*stored);
  }
  std::size_t size() const { return bytes_.size(); }
  void clear() { bytes_.clear(); }
  std::vector<std::pair<K, V>> items() const {
    std::vector<std::pair<K, V>> out;
    for (const auto& [k, v] : bytes_.items())
      out.emplace_back(Codec<K>::decode(ByteView(k)), Codec<V>::decode(ByteView(v)));
    return out;
  }

  ByteDict& bytes() noexcept { return bytes_; }
  const ByteDict& bytes() const noexcept { return bytes_; }

 private:
  explicit SharedDict(ByteDict bytes) : bytes_(std::move(bytes)) {}
  template <class T>
  static Bytes encode(const T& v) {
    Bytes b(Codec<T>::size(v));
    Codec<T>::encode(v, b.data());
    return b;
  }
  ByteDict bytes_;
};

}  // namespace mpt
