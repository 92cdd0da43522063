// Links an installed mpthrottle: 2 worker processes at 20 per second for 1 second.
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "mpt/process.hpp"
#include "mpt/throttle.hpp"

int main() {
  mpt::Throttle throttle(20, std::chrono::seconds(1));
  std::vector<mpt::Process> workers;
  for (int i = 0; i < 2; ++i) {
    workers.emplace_back([&throttle] {
      auto kill = throttle.kill_flag();
      while (!kill.is_set())
        (void)throttle.await_fuel();
    });
    workers.back().start();
  }
  throttle.start();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto [runtime, total, mean_interval_s, mean_rate] = throttle.stop();
  for (mpt::Process& w : workers)
    w.join();
  std::printf("consumer: total %llu in %.3f s (%.2f/s)\n", static_cast<unsigned long long>(total),
              runtime.count(), mean_rate);
  return (total >= 18 && total <= 22) ? 0 : 1;
}
