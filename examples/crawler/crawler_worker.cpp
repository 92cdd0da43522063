// examples/crawler/crawler_worker.cpp — one worker of the crawler example. Started on its own
// (not forked by the coordinator), it attaches to the named throttle and "fetches" fake URLs at
// the rate all workers share, until the coordinator stops the throttle.
//
//   crawler_worker NAME [WAIT_SECONDS]   waits up to WAIT_SECONDS (default 10) for NAME to exist
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <random>
#include <thread>

#include "mpt/error.hpp"
#include "mpt/throttle.hpp"

namespace {

// Stands in for an HTTP GET.
void fetch(const char* url, std::mt19937& rng) {
  std::uniform_int_distribution<int> ms(1, 20);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms(rng)));
  std::printf("worker %d: fetched %s\n", static_cast<int>(getpid()), url);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: crawler_worker NAME [WAIT_SECONDS]\n");
    return 2;
  }
  const long wait_s = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 10;
  std::optional<mpt::Throttle> throttle;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  while (!throttle) {
    try {
      throttle = mpt::Throttle::open(argv[1]);
    } catch (const mpt::NotFound& e) {
      if (std::chrono::steady_clock::now() >= deadline) {
        std::fprintf(stderr, "worker: %s\n", e.what());
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "worker: %s\n", e.what());
      return 1;
    }
  }

  std::mt19937 rng(static_cast<unsigned>(getpid()));
  auto kill = throttle->kill_flag();
  long fetched = 0;
  for (long page = 0; !kill.is_set(); ++page) {
    if (!throttle->await_fuel()) break;  // stopped while waiting
    char url[96];
    std::snprintf(url, sizeof url, "https://example.com/page/%d-%ld", static_cast<int>(getpid()),
                  page);
    fetch(url, rng);
    ++fetched;
  }
  std::printf("worker %d: done, %ld pages\n", static_cast<int>(getpid()), fetched);
  return 0;
}
