// mpt/pipeline.hpp — process_parallel(generator, processor, consumer, options), as in the Python
// library PyProcessParallel: the generator and the consumer run in the calling process, the
// processor in `workers` forked worker processes, connected by two bounded shared-memory queues,
// so memory stays bounded whatever the input size.
//
//   std::vector<std::string> lines = ...;
//   std::size_t i = 0;
//   mpt::process_parallel(
//       [&]() -> std::optional<std::string_view> {            // generator, pulled lazily
//         if (i == lines.size()) return std::nullopt;
//         return lines[i++];
//       },
//       [](std::string_view line) { return split(line); },     // processor, in a worker
//       [&](std::vector<std::string_view> tokens) { ... },     // consumer, here
//       {.workers = 2});
//
// Types: the generator returns std::optional<In> (nullopt ends the input); the processor takes
// the decoded In and returns Out; the consumer takes the decoded Out. In and Out need a Codec
// (mpt/queue.hpp): trivially copyable types, std::string, std::string_view, vectors of those, or
// your own. A std::string_view (or a vector of them) received by the processor or consumer points
// into the message buffer and is valid only during that call.
//
// Order: results reach the consumer in the order they are finished, not the input order.
//
// Items travel in batches of up to `chunk_size` items per message (one Queue message carries many
// items; this is what makes it fast). Bounds, counted in items:
//   max_jobs     items generated and not yet processed (pending, queued, or in a worker's hands):
//                the generator is not called while this many are in flight.
//   max_results  items whose result is reserved (a worker reserves room for a batch's results
//                before processing it) and not yet consumed.
// The queues' memory is fixed at the start: 2 × queue_messages × max_message_bytes.
//
// Failure: if a worker dies (crash, signal, exit, or the processor throws), process_parallel
// notices at its next look at the workers (each time it waits for results, and at least every
// 100 ms while it is busy: a few milliseconds measured), kills and reaps every worker, and throws
// mpt::WorkerDied naming the item and "killed by signal 9 (SIGKILL)" or "exited with status 3"
// (and the exception's message).
// An exception from the generator or the consumer propagates after the workers are killed and
// reaped. No zombie and no orphan is left behind in either case; workers also die with the
// calling process (PR_SET_PDEATHSIG).
//
// Not safe to call concurrently from several threads of one process (each call forks).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "mpt/detail/parallel.hpp"
#include "mpt/error.hpp"
#include "mpt/queue.hpp"

namespace mpt {

struct ParallelOptions {
  int workers = 0;                            // 0: one per online CPU
  std::int64_t max_jobs = 16384;              // items; see the banner
  std::int64_t max_results = 16384;           // items; see the banner
  std::uint32_t chunk_size = 512;             // items per message (clamped to both bounds)
  std::size_t max_message_bytes = 256 << 10;  // bytes per message (batch); an item must fit one
  std::size_t queue_messages = 0;             // messages per queue; 0: 2 × workers + 2
};

namespace detail {

template <class G>
using generated_t = typename std::invoke_result_t<G&>::value_type;

inline int resolve_workers(int workers) {
  if (workers > 0) return workers;
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

inline void check_parallel_options(const ParallelOptions& o, const char* what) {
  if (o.workers < 0)
    throw InvalidArgument(std::string(what) + ": workers " + std::to_string(o.workers) + " < 0");
  if (o.max_jobs < 1)
    throw InvalidArgument(std::string(what) + ": max_jobs " + std::to_string(o.max_jobs) + " < 1");
  if (o.max_results < 1)
    throw InvalidArgument(std::string(what) + ": max_results " + std::to_string(o.max_results) +
                          " < 1");
  if (o.chunk_size < 1) throw InvalidArgument(std::string(what) + ": chunk_size is 0");
  if (o.max_message_bytes < sizeof(BatchHeader) + 8)
    throw InvalidArgument(std::string(what) + ": max_message_bytes " +
                          std::to_string(o.max_message_bytes) + " is too small");
}

}  // namespace detail

// process_parallel()
// Blocks until the generator is exhausted and every result has been consumed. See the banner.
// Throws InvalidArgument for bad options (or an item or result too large for max_message_bytes),
// WorkerDied when a worker dies, and whatever the generator or consumer throws.
template <class Generator, class Processor, class Consumer>
void process_parallel(Generator&& generator, Processor&& processor, Consumer&& consumer,
                      const ParallelOptions& options = {}) {
  using In = detail::generated_t<Generator>;
  using Out = std::decay_t<std::invoke_result_t<Processor&, In>>;
  static_assert(Encodable<In>, "process_parallel: the generator's type needs an mpt::Codec");
  static_assert(Encodable<Out>, "process_parallel: the processor's result needs an mpt::Codec");
  constexpr const char* kWhat = "process_parallel";
  detail::check_parallel_options(options, kWhat);
  const int workers = detail::resolve_workers(options.workers);
  const auto chunk = static_cast<std::uint32_t>(
      std::min<std::int64_t>({options.chunk_size, options.max_jobs, options.max_results}));
  QueueOptions q;
  q.capacity =
      options.queue_messages ? options.queue_messages : 2 * static_cast<std::size_t>(workers) + 2;
  q.max_message_bytes = options.max_message_bytes;
  Queue jobs = Queue::anonymous(q);
  Queue results = Queue::anonymous(q);

  detail::WorkerGroup group(kWhat, workers, options.max_results,
                            [&](int, detail::WorkerControl& ctl, detail::WorkerSlot& slot) {
                              std::vector<std::byte> in;
                              detail::BatchWriter out(results.max_message_bytes(), UINT32_MAX);
                              while (detail::worker_get(jobs, in, ctl))
                                detail::process_batch<In, Out>(std::span<const std::byte>(in),
                                                               processor, results, ctl, slot, out);
                            });
  auto next = [&]() -> std::optional<In> { return generator(); };
  auto consume = [&](std::span<const std::byte> msg) -> std::uint32_t {
    return detail::for_each_item(msg, [&](std::uint64_t, std::span<const std::byte> bytes) {
      consumer(Codec<Out>::decode(bytes));
    });
  };
  detail::run_parent<In>(jobs, results, group, next, consume, options.max_jobs, chunk, kWhat);
  group.finish(std::chrono::seconds(5));
}

}  // namespace mpt
