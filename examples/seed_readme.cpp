// The mp_throttle README example in C++: 4 worker processes, 4 units per second, 5 seconds.
//
//   Python (mp_throttle)                         C++ (mpthrottle)
//   throttle = mp_throttle.Throttle(4, 1)        mpt::Throttle throttle(4, 1s);
//   multiprocessing.Pool(4, initializer=work)    4 x mpt::Process running work(throttle)
//   throttle.start(); time.sleep(5)              throttle.start(); sleep_for(5s);
//   runtime, total, freq, per_sec = stop()       auto [runtime, total, freq, per_sec] = stop();
//
// Usage: seed_readme [SECONDS]   (default 5)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "mpt/process.hpp"
#include "mpt/throttle.hpp"

using namespace std::chrono_literals;

// The worker: take fuel until the throttle is stopped.
static void work(mpt::Throttle& tank) {
  auto kill_flag = tank.kill_flag();
  while (!kill_flag.is_set()) {
    // Block until 'fuel' is available (returns false once the throttle is stopped).
    tank.await_fuel();
    // do something
  }
}

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  if (!(seconds > 0)) {
    std::fprintf(stderr, "usage: seed_readme [SECONDS]\n");
    return 2;
  }
  // Limit the processes to 4 per 1 second, by providing 4 'fuel' per second.
  mpt::Throttle throttle(4, 1s);
  std::vector<mpt::Process> workers;
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&throttle] { work(throttle); }, mpt::ProcessOptions{.daemon = true});
    workers.back().start();
  }
  throttle.start();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  // Stops the processes and returns the stats.
  auto [runtime, total, mean_interval, per_second] = throttle.stop();
  for (mpt::Process& w : workers)
    w.join();
  std::printf("Runtime: %.6f\n", runtime.count());
  std::printf("Total: %llu\n", static_cast<unsigned long long>(total));
  std::printf("Mean frequency: %.6f\n", mean_interval);
  std::printf("Processes per second: %.6f\n", per_second);
  return 0;
}
