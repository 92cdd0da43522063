// The mp_throttle README example with a process pool, as the seed writes it:
//
//   throttle = mp_throttle.Throttle(4, 1)
//   workerpool = multiprocessing.Pool(processes=4, initializer=work, initargs=(throttle,))
//   throttle.start(); time.sleep(5)
//   runtime, total_processes, mean_frequency, mean_processes_per_second = throttle.stop()
//
// Usage: mp_seed_pool [SECONDS]   (default 5)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "mpt/pool.hpp"
#include "mpt/throttle.hpp"

using namespace std::chrono_literals;

// The initializer each worker runs: take fuel until the throttle is stopped.
static void work(mpt::Throttle& tank) {
  auto kill_flag = tank.kill_flag();
  while (!kill_flag.is_set()) {
    tank.await_fuel();  // block until 'fuel' is available (false once stopped)
    // do something
  }
}

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  if (!(seconds > 0)) {
    std::fprintf(stderr, "usage: mp_seed_pool [SECONDS]\n");
    return 2;
  }
  // Limit the processes to 4 per 1 second, by providing 4 'fuel' per second.
  mpt::Throttle throttle(4, 1s);
  mpt::Pool workerpool(4, [&throttle] { work(throttle); });
  throttle.start();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  // Stops the processes and returns the stats.
  auto [runtime, total, mean_interval, per_second] = throttle.stop();
  workerpool.close();
  if (!workerpool.join(5s)) std::fprintf(stderr, "mp_seed_pool: workers did not stop\n");
  std::printf("Runtime: %.6f\n", runtime.count());
  std::printf("Total: %llu\n", static_cast<unsigned long long>(total));
  std::printf("Mean frequency: %.6f\n", mean_interval);
  std::printf("Processes per second: %.6f\n", per_second);
  return 0;
}
