// Links an installed mpthrottle: 2 forked workers at 20 per second for 1 second.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "mpt/throttle.hpp"

int main() {
  mpt::Throttle throttle(20, std::chrono::seconds(1));
  for (int i = 0; i < 2; ++i) {
    if (fork() == 0) {
      auto kill = throttle.kill_flag();
      while (!kill.is_set())
        (void)throttle.await_fuel();
      _exit(0);
    }
  }
  throttle.start();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto [runtime, total, mean_interval_s, mean_rate] = throttle.stop();
  while (wait(nullptr) > 0) {
  }
  std::printf("consumer: total %llu in %.3f s (%.2f/s)\n", static_cast<unsigned long long>(total),
              runtime.count(), mean_rate);
  return (total >= 18 && total <= 22) ? 0 : 1;
}
