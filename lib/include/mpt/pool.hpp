// mpt/pool.hpp — a pool of worker processes (Python's multiprocessing.Pool): map() with results
// in input order, an optional initializer, and map_reduce().
//
//   mpt::Throttle throttle(4, 1s);
//   mpt::Pool pool(4, [&] { work(throttle); });   // the mp_throttle README example
//   throttle.start(); std::this_thread::sleep_for(5s); throttle.stop();
//   pool.close(); pool.join();
//
//   mpt::Pool pool(2);
//   std::vector<int> squares = pool.map(+[](int x) { return x * x; }, std::vector{1, 2, 3});
//
// Workers are forked when the pool is built (daemons: they die with the calling process); each
// runs the initializer, then serves map() calls until close() or the pool's destruction. An
// initializer that never returns keeps its worker from serving maps (the seed example uses the
// pool only this way).
//
// The function passed to map() travels to the workers byte for byte, so it must be trivially
// copyable: a function pointer, or a lambda capturing trivially copyable values by value. (The
// workers are copies of the pool's creator as it was when the pool was built: a reference
// captured now would see that old copy, not the caller's current data.) process_parallel
// (mpt/pipeline.hpp) forks for each call and takes any callable.
//
// Items and results need a Codec (mpt/queue.hpp). They travel in chunks (chunk_size, default
// about len / (4 × workers) as in Python, at most 1024).
//
// Failure: a worker that dies during map() (signal, exit, or fn throws) makes map() throw
// mpt::WorkerDied at the parent's next look at the workers (as process_parallel: a few ms, at
// most about 100 ms while busy), naming the item and the signal or status; every worker is
// killed and reaped, and the next map() starts a fresh set (running the initializer again). A
// worker that died between calls is replaced the same way.
//
// Not safe for concurrent use: one thread drives a Pool.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "mpt/detail/parallel.hpp"
#include "mpt/pipeline.hpp"
#include "mpt/queue.hpp"

namespace mpt {

// std::pair<A, B> for map_reduce: a u32 length, A's encoding, then B's.
template <class A, class B>
struct Codec<std::pair<A, B>> {
  static std::size_t size(const std::pair<A, B>& v) {
    return 4 + Codec<A>::size(v.first) + Codec<B>::size(v.second);
  }
  static void encode(const std::pair<A, B>& v, std::byte* out) {
    const auto a = static_cast<std::uint32_t>(Codec<A>::size(v.first));
    std::memcpy(out, &a, 4);
    Codec<A>::encode(v.first, out + 4);
    Codec<B>::encode(v.second, out + 4 + a);
  }
  static std::pair<A, B> decode(std::span<const std::byte> in) {
    std::uint32_t a;
    if (in.size() < 4) throw InvalidArgument("Codec: truncated pair");
    std::memcpy(&a, in.data(), 4);
    if (in.size() - 4 < a) throw InvalidArgument("Codec: truncated pair");
    return {Codec<A>::decode(in.subspan(4, a)), Codec<B>::decode(in.subspan(4 + a))};
  }
};

struct PoolOptions {
  std::uint32_t chunk_size = 0;  // items per message; 0: len / (4 × workers), ≤ 1024
  std::size_t max_message_bytes = 256 << 10;  // bytes per message; an item must fit one
};

class Pool {
 public:
  // Pool(processes, initializer, options): forks `processes` workers (0: one per online CPU)
  // now. Throws InvalidArgument for a bad count, SystemError if fork fails.
  explicit Pool(int processes = 0, std::function<void()> initializer = {},
                PoolOptions options = {});
  // Kills (SIGKILL) and reaps the workers still running, as Python's `with Pool()` terminates.
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Pool::map()
  // Applies fn to every item in worker processes; returns the results in input order. Blocks
  // until done. Throws WorkerDied (see the banner), InvalidArgument after close() or for an item
  // too large for max_message_bytes.
  template <class Fn, class In>
  auto map(Fn fn, const std::vector<In>& items)
      -> std::vector<std::decay_t<std::invoke_result_t<Fn&, In>>> {
    using Out = std::decay_t<std::invoke_result_t<Fn&, In>>;
    static_assert(std::is_trivially_copyable_v<Fn>,
                  "Pool::map copies fn into the workers byte for byte: pass a function pointer or "
                  "a lambda that captures trivially copyable values by value (or use "
                  "process_parallel, which takes any callable)");
    static_assert(Encodable<In> && Encodable<Out>, "Pool::map: items and results need a Codec");
    static_assert(!codec_is_view<Out>(), "Pool::map: results must own their data");
    std::vector<std::optional<Out>> slots(items.size());
    if (items.empty()) return {};
    ensure_workers();
    // The task prefix: the trampoline's address (valid in the workers: they are forks of this
    // process) and fn's bytes.
    std::vector<std::byte> prefix(sizeof(TaskHeader) + sizeof(Fn));
    TaskHeader th{reinterpret_cast<std::uintptr_t>(&task<In, Out, Fn>), sizeof(Fn), 0};
    std::memcpy(prefix.data(), &th, sizeof th);
    std::memcpy(prefix.data() + sizeof th, &fn, sizeof(Fn));
    std::size_t i = 0;
    auto next = [&]() -> std::optional<In> {
      if (i == items.size()) return std::nullopt;
      return items[i++];
    };
    auto consume = [&](std::span<const std::byte> msg) -> std::uint32_t {
      return detail::for_each_item(msg, [&](std::uint64_t index, std::span<const std::byte> b) {
        slots.at(index).emplace(Codec<Out>::decode(b));
      });
    };
    const std::uint32_t chunk = chunk_for(items.size());
    try {
      detail::run_parent<In>(*jobs_, *results_, *group_, next, consume,
                             static_cast<std::int64_t>(chunk) * 4 * group_->size(), chunk,
                             "Pool.map", prefix, /*close_jobs=*/false);
    } catch (...) {
      group_.reset();  // kills and reaps; the next map() starts fresh workers
      throw;
    }
    std::vector<Out> out;
    out.reserve(slots.size());
    for (auto& s : slots)
      out.push_back(std::move(*s));
    return out;
  }

  // Pool::close(): no more map() calls; workers exit once their initializer has returned.
  void close();
  // Pool::join(): after close(), waits up to `timeout` (none: forever) for every worker to exit;
  // true when all have. Throws InvalidArgument before close().
  bool join(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  // Pool::terminate(): kills (SIGKILL) and reaps every worker now.
  void terminate() noexcept;

  int processes() const noexcept { return processes_; }
  // Worker pids (empty once terminated).
  std::vector<pid_t> pids() const;

 private:
  struct TaskHeader {
    std::uintptr_t trampoline;
    std::uint32_t fn_bytes;
    std::uint32_t reserved;
  };
  using Trampoline = void (*)(std::span<const std::byte> fn, std::span<const std::byte> batch,
                              Queue& results, detail::WorkerControl& ctl, detail::WorkerSlot& slot,
                              detail::BatchWriter& out);

  template <class In, class Out, class Fn>
  static void task(std::span<const std::byte> fn_bytes, std::span<const std::byte> batch,
                   Queue& results, detail::WorkerControl& ctl, detail::WorkerSlot& slot,
                   detail::BatchWriter& out) {
    std::array<std::byte, sizeof(Fn)> raw;
    std::memcpy(raw.data(), fn_bytes.data(), sizeof(Fn));
    Fn fn = std::bit_cast<Fn>(raw);
    detail::process_batch<In, Out>(batch, fn, results, ctl, slot, out);
  }

  void ensure_workers();
  void serve(detail::WorkerControl& ctl, detail::WorkerSlot& slot);
  std::uint32_t chunk_for(std::size_t n) const noexcept;

  int processes_;
  std::function<void()> initializer_;
  PoolOptions options_;
  bool closed_ = false;
  std::unique_ptr<Queue> jobs_, results_;
  std::unique_ptr<detail::WorkerGroup> group_;
};

// map_reduce()
// PyMOTW's SimpleMapReduce: mapper(item) -> std::vector<std::pair<K, V>> runs in the pool; the
// pairs are grouped by key here; reducer(std::pair<K, std::vector<V>>) -> R runs in the pool, once
// per key. Returns the reducer's results in key order. Same requirements and errors as map().
template <class Mapper, class Reducer, class In>
auto map_reduce(Pool& pool, const std::vector<In>& items, Mapper mapper, Reducer reducer) {
  using Pairs = std::decay_t<std::invoke_result_t<Mapper&, In>>;
  using KV = typename Pairs::value_type;
  using K = std::decay_t<typename KV::first_type>;
  using V = std::decay_t<typename KV::second_type>;
  std::map<K, std::vector<V>> groups;
  for (auto& pairs : pool.map(mapper, items))
    for (auto& [k, v] : pairs)
      groups[std::move(k)].push_back(std::move(v));
  std::vector<std::pair<K, std::vector<V>>> partitioned(std::make_move_iterator(groups.begin()),
                                                        std::make_move_iterator(groups.end()));
  return pool.map(reducer, partitioned);
}

}  // namespace mpt
