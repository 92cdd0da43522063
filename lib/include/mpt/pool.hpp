// mpt/pool.hpp — a pool of worker processes (Python's multiprocessing.Pool): map() with results
// in input order, imap() / imap_unordered() over a lazy source (a range or a generator) with
// bounded memory, an optional initializer, and map_reduce().
//
//   mpt::Throttle throttle(4, 1s);
//   mpt::Pool pool(4, [&] { work(throttle); });   // the mp_throttle README example
//   throttle.start(); std::this_thread::sleep_for(5s); throttle.stop();
//   pool.close(); pool.join();
//
//   mpt::Pool pool(2);
//   std::vector<int> squares = pool.map(+[](int x) { return x * x; }, std::vector{1, 2, 3});
//   pool.imap(+[](int x) { return x * x; }, std::views::iota(0),   // endless, pulled lazily
//             [](int sq) { return sq < 1000; });                   // false: stop
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
// about len / (4 × workers) as in Python, at most 1024; imap: 1, as in Python). map and imap are
// one pipeline (process_parallel's, mpt/detail/parallel.hpp).
//
// Failure: a worker that dies during map() or imap() (signal, exit, or fn throws) makes map() throw
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
#include <ranges>
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
  std::uint32_t chunk_size = 0;  // items per message; 0: len / (4 × workers), ≤ 1024 (imap: 1)
  std::size_t max_message_bytes = 256 << 10;  // bytes per message; an item must fit one
};

struct ImapOptions {
  std::uint32_t chunk_size = 0;    // items per message; 0: PoolOptions::chunk_size, else 1
  std::int64_t max_in_flight = 0;  // items; 0: 4 × chunk_size × processes (see Pool::imap)
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
    std::vector<Out> out;
    if (items.empty()) return out;
    out.reserve(items.size());
    std::size_t i = 0;
    auto next = [&]() -> std::optional<In> {
      if (i == items.size()) return std::nullopt;
      return items[i++];
    };
    auto deliver = [&](std::uint64_t, Out&& r) {
      out.push_back(std::move(r));
      return true;
    };
    const std::uint32_t chunk = chunk_for(items.size());
    // The results are all kept anyway: those waiting for an earlier one do not hold back the
    // workers (parked results are not counted against the bound).
    run_lazy<In, Out>(fn, next, deliver, Delivery::kInOrderUnbounded, chunk,
                      static_cast<std::int64_t>(chunk) * 4 * processes_, "Pool.map");
    return out;
  }

  // Pool::imap() / Pool::imap_unordered()
  // Python's imap over a lazy source, results handed to `consumer` as they come. `source` is an
  // input range (std::views::iota(0), a container, a view over a stream) or a generator, a
  // callable returning std::optional<In> (nullopt: the end). It is pulled here, in the calling
  // thread, only as fast as the workers keep up: never more than options.max_in_flight items
  // that are pulled and not yet processed or (imap) processed but waiting for an earlier item's
  // result; beyond that only the results on their way (the results queue and each worker's
  // output: about 3 × processes chunks) are held. An infinite source is fine: the consumer
  // stops it.
  //
  // `consumer(result)` or `consumer(index, result)` (index: the item's position in the source)
  // runs here; imap calls it in source order, imap_unordered in completion order. It returns
  // void, or a bool: false stops the call (no more items are pulled; the call waits for the
  // items already in flight, at most max_in_flight, and drops their results; the workers stay
  // ready for the next call). Returns the number of
  // results handed to the consumer. Same requirements on fn and the same errors as map();
  // exceptions of the source or the consumer propagate after the workers are killed (the next
  // call starts fresh ones).
  template <class Fn, class Source, class Consumer>
  std::uint64_t imap(Fn fn, Source&& source, Consumer&& consumer, ImapOptions options = {}) {
    return imap_impl(fn, source, consumer, options, Delivery::kInOrder, "Pool.imap");
  }
  template <class Fn, class Source, class Consumer>
  std::uint64_t imap_unordered(Fn fn, Source&& source, Consumer&& consumer,
                               ImapOptions options = {}) {
    return imap_impl(fn, source, consumer, options, Delivery::kUnordered, "Pool.imap_unordered");
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

  enum class Delivery { kUnordered, kInOrder, kInOrderUnbounded };

  // The item type of an imap source: a range's value type, or a generator's optional's.
  template <class Source>
  static auto source_item() {
    if constexpr (std::ranges::input_range<Source>)
      return std::type_identity<std::ranges::range_value_t<Source>>{};
    else
      return std::type_identity<typename std::invoke_result_t<Source&>::value_type>{};
  }

  template <class Fn, class Source, class Consumer>
  std::uint64_t imap_impl(Fn& fn, Source& source, Consumer& consumer, ImapOptions options,
                          Delivery delivery, const char* what) {
    using In = typename decltype(source_item<Source>())::type;
    using Out = std::decay_t<std::invoke_result_t<Fn&, In>>;
    const std::uint32_t chunk = options.chunk_size    ? options.chunk_size
                                : options_.chunk_size ? options_.chunk_size
                                                      : 1;
    const std::int64_t max_jobs = options.max_in_flight
                                      ? options.max_in_flight
                                      : static_cast<std::int64_t>(chunk) * 4 * processes_;
    if (max_jobs < 1)
      throw InvalidArgument(std::string(what) + ": max_in_flight " + std::to_string(max_jobs) +
                            " < 1");
    auto deliver = [&](std::uint64_t index, Out&& r) -> bool {
      using R = decltype(call_consumer(consumer, index, std::move(r)));
      if constexpr (std::is_void_v<R>) {
        call_consumer(consumer, index, std::move(r));
        return true;
      } else {
        return static_cast<bool>(call_consumer(consumer, index, std::move(r)));
      }
    };
    if constexpr (std::ranges::input_range<Source>) {
      auto it = std::ranges::begin(source);
      const auto end = std::ranges::end(source);
      auto next = [&]() -> std::optional<In> {
        if (it == end) return std::nullopt;
        std::optional<In> v(*it);
        ++it;
        return v;
      };
      return run_lazy<In, Out>(fn, next, deliver, delivery, chunk, max_jobs, what);
    } else {
      static_assert(std::is_invocable_v<Source&>,
                    "Pool::imap: the source is an input range or a callable returning "
                    "std::optional<T>");
      return run_lazy<In, Out>(fn, source, deliver, delivery, chunk, max_jobs, what);
    }
  }

  template <class Consumer, class Out>
  static decltype(auto) call_consumer(Consumer& c, std::uint64_t index, Out&& r) {
    if constexpr (std::is_invocable_v<Consumer&, std::uint64_t, Out&&>)
      return c(index, std::move(r));
    else
      return c(std::move(r));
  }

  // The pipeline behind map and imap: items from `next` (std::optional<In>()), results to
  // `deliver(index, Out&&) -> bool` (false: stop pulling, drop the rest), in source order unless
  // kUnordered. Returns the number of results delivered.
  template <class In, class Out, class Fn, class Next, class Deliver>
  std::uint64_t run_lazy(Fn& fn, Next& next, Deliver& deliver, Delivery delivery,
                         std::uint32_t chunk, std::int64_t max_jobs, const char* what) {
    static_assert(std::is_trivially_copyable_v<Fn>,
                  "Pool::map copies fn into the workers byte for byte: pass a function pointer or "
                  "a lambda that captures trivially copyable values by value (or use "
                  "process_parallel, which takes any callable)");
    static_assert(Encodable<In> && Encodable<Out>, "Pool::map: items and results need a Codec");
    static_assert(!codec_is_view<Out>(), "Pool::map: results must own their data");
    ensure_workers();
    // The task prefix: the trampoline's address (valid in the workers: they are forks of this
    // process) and fn's bytes.
    std::vector<std::byte> prefix(sizeof(TaskHeader) + sizeof(Fn));
    TaskHeader th{reinterpret_cast<std::uintptr_t>(&task<In, Out, Fn>), sizeof(Fn), 0};
    std::memcpy(prefix.data(), &th, sizeof th);
    std::memcpy(prefix.data() + sizeof th, &fn, sizeof(Fn));
    bool stopped = false;
    std::uint64_t delivered = 0;
    auto pull = [&]() -> std::optional<In> {
      if (stopped) return std::nullopt;
      return next();
    };
    auto hand = [&](std::uint64_t index, Out&& r) {
      if (stopped) return;
      ++delivered;
      if (!deliver(index, std::move(r))) stopped = true;
    };
    detail::InOrder<Out> order;
    auto consume = [&](std::span<const std::byte> msg) -> std::uint32_t {
      return detail::for_each_item(msg, [&](std::uint64_t index, std::span<const std::byte> b) {
        if (delivery == Delivery::kUnordered)
          hand(index, Codec<Out>::decode(b));
        else
          order.put(index, Codec<Out>::decode(b), hand);
      });
    };
    const std::uint64_t* parked = delivery == Delivery::kInOrder ? order.parked() : nullptr;
    try {
      detail::run_parent<In>(*jobs_, *results_, *group_, pull, consume, max_jobs, chunk, what,
                             prefix, /*close_jobs=*/false, parked);
    } catch (...) {
      group_.reset();  // kills and reaps; the next call starts fresh workers
      throw;
    }
    return delivered;
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
