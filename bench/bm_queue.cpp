// Queue throughput between two processes: a child producer puts 64-byte messages, this process
// gets them. BM_Queue_TwoProcesses reports messages per second (items_per_second).
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstddef>

#include "mpt/process.hpp"
#include "mpt/queue.hpp"

namespace {

using namespace std::chrono_literals;

void BM_Queue_TwoProcesses(benchmark::State& state) {
  const auto capacity = static_cast<std::size_t>(state.range(0));
  auto q = mpt::Queue::anonymous({.capacity = capacity, .max_message_bytes = 64});
  auto stop = mpt::Queue::anonymous({.capacity = 1, .max_message_bytes = 0});
  mpt::Process producer(
      [&] {
        std::array<std::byte, 64> msg{};
        while (!stop.closed())
          (void)q.put(msg, 100ms);
      },
      {.daemon = true});
  producer.start();
  std::vector<std::byte> buf;
  for (auto _ : state) {
    if (!q.get_into(buf, 10s)) {
      state.SkipWithError("producer stalled");
      break;
    }
    benchmark::DoNotOptimize(buf.data());
  }
  stop.close();
  while (q.get_into(buf, 0ns)) {
  }
  producer.join();
  state.SetItemsProcessed(state.iterations());
  state.counters["msgs_per_sec"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Queue_TwoProcesses)->ArgNames({"capacity_msgs"})->Arg(64)->Arg(1024)->UseRealTime();

// One process, put then get: the price of the lock and the copies without contention.
void BM_Queue_PutGetSameProcess(benchmark::State& state) {
  auto q = mpt::Queue::anonymous({.capacity = 64, .max_message_bytes = 64});
  std::array<std::byte, 64> msg{};
  std::vector<std::byte> buf;
  for (auto _ : state) {
    (void)q.put(msg, 0ns);
    (void)q.get_into(buf, 0ns);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Queue_PutGetSameProcess);

}  // namespace

BENCHMARK_MAIN();
