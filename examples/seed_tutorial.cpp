// The mp_throttle tutorial's "Get the stats" example in C++: while 4 worker processes run at 5 per
// second, print latest() and mean() every half second, then the summary.
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "mpt/process.hpp"
#include "mpt/throttle.hpp"

using namespace std::chrono_literals;

int main() {
  mpt::Throttle throttle(5, 1s);
  std::vector<mpt::Process> workers;
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back(
        [&throttle] {
          auto kill_flag = throttle.kill_flag();
          while (!kill_flag.is_set())
            throttle.await_fuel();
        },
        mpt::ProcessOptions{.daemon = true});
    workers.back().start();
  }
  throttle.start();
  for (int i = 0; i < 10; ++i) {
    const mpt::Rate latest = throttle.latest();
    const mpt::Rate mean = throttle.mean();
    std::printf("latest (%.4f, %.3f)  mean (%.4f, %.3f)\n", latest.interval_s, latest.rate_per_sec,
                mean.interval_s, mean.rate_per_sec);
    std::this_thread::sleep_for(500ms);
  }
  auto [runtime, total, mean_interval, per_second] = throttle.stop();
  for (mpt::Process& w : workers)
    w.join();
  std::printf("Runtime: %.6f\n", runtime.count());
  std::printf("Total: %llu\n", static_cast<unsigned long long>(total));
  std::printf("Time between processes: %.6f\n", mean_interval);
  std::printf("Processes per second: %.6f\n", per_second);
  return 0;
}
