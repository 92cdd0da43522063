// mpt/queue.hpp — a bounded multi-producer multi-consumer message queue in shared memory
// (Python's multiprocessing.Queue), and Codec<T>, how values become bytes.
//
// A Queue holds up to `capacity` messages of 0..max_message_bytes bytes each, in one segment of
// kind SegmentKind::kQueue: a robust process-shared mutex, two futex words (not empty, not full)
// and `capacity` fixed-size slots. put() copies a message into the next free slot, get() copies
// the oldest one out: first in, first out across all processes. A message larger than
// max_message_bytes is an InvalidArgument error, never truncated.
//
// Crash safety: every operation commits with one 64-bit store made while holding the mutex, so a
// process killed at any instruction (even inside put or get) leaves a consistent queue: the next
// locker gets the robust mutex back, and the dead process's message was either entirely enqueued
// (or dequeued) or not at all.
//
// close() marks the end of the stream: later puts fail, gets drain what is left and then return
// at once. Waiters are woken.
//
// Lifetime: create(name) makes /dev/shm/mpt.<name> (unlinked when the creating process drops its
// last handle, see Segment), open(name) attaches, anonymous() is shared with children forked
// after it. Handles are cheap to copy.
//
// Memory ordering: everything a process wrote before put() is visible to the process whose get()
// returns that message.
// Safe for concurrent use by threads and processes; size() and closed() may be stale on return.
#pragma once

#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "mpt/error.hpp"
#include "mpt/segment.hpp"

namespace mpt {

// --- Codec<T> ----------------------------------------------------------------------------------
//
// How a value of type T is written to and read from a message. Provided:
//   * trivially copyable types (not pointers): their bytes;
//   * std::string, and std::string_view (decoded as a view into the message, valid only during
//     the call that receives it: process_parallel's processor and consumer);
//   * std::vector<T> for any T with a Codec (byte vectors and other trivially copyable elements
//     are one memcpy).
// Others: specialise mpt::Codec<YourType> with
//   static std::size_t size(const T& v);                       // bytes encode() will write
//   static void encode(const T& v, std::byte* out);             // writes exactly size(v) bytes
//   static T decode(std::span<const std::byte> in);             // in.size() == the size written
// (decode may throw on malformed input). Define kView = true if T refers into the message.
template <class T, class Enable = void>
struct Codec;

template <class T>
concept Encodable = requires(const T& v, std::byte* out, std::span<const std::byte> in) {
  { Codec<T>::size(v) } -> std::convertible_to<std::size_t>;
  Codec<T>::encode(v, out);
  { Codec<T>::decode(in) } -> std::convertible_to<T>;
};

// True for codecs whose decoded values point into the message (std::string_view, ...).
template <class T>
constexpr bool codec_is_view() {
  if constexpr (requires { Codec<T>::kView; })
    return Codec<T>::kView;
  else
    return false;
}

template <class T>
struct Codec<T, std::enable_if_t<std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> &&
                                 !std::is_same_v<T, std::string_view>>> {
  static std::size_t size(const T&) noexcept { return sizeof(T); }
  static void encode(const T& v, std::byte* out) noexcept { std::memcpy(out, &v, sizeof(T)); }
  static T decode(std::span<const std::byte> in) {
    if (in.size() != sizeof(T))
      throw InvalidArgument("Codec: a value of " + std::to_string(sizeof(T)) +
                            " bytes cannot be decoded from " + std::to_string(in.size()) +
                            " bytes");
    std::array<std::byte, sizeof(T)> raw;
    std::memcpy(raw.data(), in.data(), sizeof(T));
    return std::bit_cast<T>(raw);
  }
};

template <>
struct Codec<std::string> {
  static std::size_t size(const std::string& v) noexcept { return v.size(); }
  static void encode(const std::string& v, std::byte* out) noexcept {
    if (!v.empty()) std::memcpy(out, v.data(), v.size());
  }
  static std::string decode(std::span<const std::byte> in) {
    return std::string(reinterpret_cast<const char*>(in.data()), in.size());
  }
};

template <>
struct Codec<std::string_view> {
  static constexpr bool kView = true;
  static std::size_t size(std::string_view v) noexcept { return v.size(); }
  static void encode(std::string_view v, std::byte* out) noexcept {
    if (!v.empty()) std::memcpy(out, v.data(), v.size());
  }
  static std::string_view decode(std::span<const std::byte> in) noexcept {
    return std::string_view(reinterpret_cast<const char*>(in.data()), in.size());
  }
};

// Vectors: trivially copyable elements as one block; others as a u32 count, then for each
// element a u32 length and its encoding.
template <class T, class A>
struct Codec<std::vector<T, A>> {
  static constexpr bool kView = codec_is_view<T>();
  static constexpr bool kFlat = std::is_trivially_copyable_v<T> && !codec_is_view<T>();
  static std::size_t size(const std::vector<T, A>& v) {
    if constexpr (kFlat) {
      return v.size() * sizeof(T);
    } else {
      std::size_t n = 4;
      for (const T& x : v)
        n += 4 + Codec<T>::size(x);
      return n;
    }
  }
  static void encode(const std::vector<T, A>& v, std::byte* out) {
    if constexpr (kFlat) {
      if (!v.empty()) std::memcpy(out, v.data(), v.size() * sizeof(T));
    } else {
      const auto count = static_cast<std::uint32_t>(v.size());
      std::memcpy(out, &count, 4);
      out += 4;
      for (const T& x : v) {
        const auto len = static_cast<std::uint32_t>(Codec<T>::size(x));
        std::memcpy(out, &len, 4);
        Codec<T>::encode(x, out + 4);
        out += 4 + len;
      }
    }
  }
  static std::vector<T, A> decode(std::span<const std::byte> in) {
    std::vector<T, A> v;
    if constexpr (kFlat) {
      if (in.size() % sizeof(T) != 0)
        throw InvalidArgument("Codec: " + std::to_string(in.size()) +
                              " bytes are not a whole number of elements");
      v.resize(in.size() / sizeof(T));
      if (!v.empty()) std::memcpy(v.data(), in.data(), in.size());
    } else {
      if (in.size() < 4) throw InvalidArgument("Codec: truncated vector");
      std::uint32_t count;
      std::memcpy(&count, in.data(), 4);
      std::size_t off = 4;
      v.reserve(count);
      for (std::uint32_t i = 0; i < count; ++i) {
        std::uint32_t len;
        if (in.size() - off < 4) throw InvalidArgument("Codec: truncated vector");
        std::memcpy(&len, in.data() + off, 4);
        off += 4;
        if (in.size() - off < len) throw InvalidArgument("Codec: truncated vector");
        v.push_back(Codec<T>::decode(in.subspan(off, len)));
        off += len;
      }
    }
    return v;
  }
};

// --- Queue -------------------------------------------------------------------------------------

struct QueueOptions {
  std::size_t capacity = 64;                 // messages, 1..1,048,576
  std::size_t max_message_bytes = 64 << 10;  // 0..64 MiB; capacity × it must fit a segment
  CreateOptions segment = {};                // named queues: mode and persistence
};

class Queue {
 public:
  // Queue::create() / anonymous()
  // Throws InvalidArgument for a capacity or message size out of range (or whose slots would not
  // fit in kMaxSegmentBytes), naming the values; segment errors as Segment::create.
  static Queue create(std::string_view name, const QueueOptions& options = {});
  static Queue anonymous(const QueueOptions& options = {});
  // Queue::open(): also checks the queue's own layout against the segment (IncompatibleSegment).
  static Queue open(std::string_view name, const OpenOptions& options = {});

  // Queue::put()
  // Blocks while the queue is full, up to `timeout` (none: forever; zero or negative: only
  // tries). Returns true once the message is enqueued; false on timeout or when the queue is
  // closed (see closed()). Throws InvalidArgument, naming both sizes, if the message is larger
  // than max_message_bytes().
  bool put(std::span<const std::byte> message,
           std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  bool put(std::string_view message,
           std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  // Queue::get()
  // Blocks while the queue is empty and open, up to `timeout`. Returns the oldest message, or
  // nullopt on timeout or when the queue is closed and empty.
  std::optional<std::vector<std::byte>> get(
      std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  // Queue::get_into(): the same into a buffer the caller reuses (resized to the message); false
  // on timeout or closed and empty.
  bool get_into(std::vector<std::byte>& out,
                std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  // Typed helpers through Codec<T>. put_value throws InvalidArgument if the encoding is larger
  // than max_message_bytes(); get_value throws what Codec<T>::decode throws.
  template <Encodable T>
  bool put_value(const T& v, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    std::vector<std::byte> buf(Codec<T>::size(v));
    Codec<T>::encode(v, buf.data());
    return put(std::span<const std::byte>(buf), timeout);
  }
  template <Encodable T>
  std::optional<T> get_value(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    static_assert(!codec_is_view<T>(), "get_value needs an owning type (std::string, not a view)");
    std::vector<std::byte> buf;
    if (!get_into(buf, timeout)) return std::nullopt;
    return Codec<T>::decode(std::span<const std::byte>(buf));
  }

  // Queue::close(): later puts return false; gets return what is left, then nullopt at once.
  // Wakes every waiter. Never blocks for long (takes the mutex). Idempotent.
  void close();
  [[nodiscard]] bool closed() const noexcept;

  // Messages in the queue now (may be stale on return).
  [[nodiscard]] std::size_t size() const noexcept;
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t max_message_bytes() const noexcept { return max_message_bytes_; }
  const std::shared_ptr<Segment>& segment() const noexcept { return segment_; }

  struct Shared;  // the layout in shared memory (lib/src/mp/queue_shared.hpp)

 private:
  Queue(std::shared_ptr<Segment> segment);
  std::shared_ptr<Segment> segment_;
  Shared* s_;
  std::byte* slots_;
  std::size_t capacity_;
  std::size_t slot_bytes_;
  std::size_t max_message_bytes_;
  std::string what_;  // "queue 'name'" for messages
};

}  // namespace mpt
