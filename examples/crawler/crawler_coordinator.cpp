// examples/crawler/crawler_coordinator.cpp — the coordinator of a web-crawler-shaped example.
//
// Creates a named throttle that unrelated worker processes share, starts it, prints the shared
// rate every second, and stops it after SECONDS (or on Ctrl-C): the workers see the kill flag and
// exit. The name is unlinked when the coordinator exits.
//
//   crawler_coordinator NAME [RATE_PER_SEC] [SECONDS]      then, in other shells:
//   crawler_worker NAME                                    (as many as you like)
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>

#include "mpt/error.hpp"
#include "mpt/throttle.hpp"

namespace {
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) {
  g_stop = 1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: crawler_coordinator NAME [RATE_PER_SEC] [SECONDS]\n");
    return 2;
  }
  const long rate = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 5;
  const long seconds = argc > 3 ? std::strtol(argv[3], nullptr, 10) : 30;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    auto throttle = mpt::Throttle::create(argv[1], rate, std::chrono::seconds(1));
    throttle.start();
    std::printf("coordinator: throttle '%s' at %ld requests per second for %ld s\n", argv[1], rate,
                seconds);
    std::fflush(stdout);
    for (long i = 0; i < seconds && !g_stop; ++i) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      const auto latest = throttle.latest();
      const auto mean = throttle.mean();
      std::printf("coordinator: %llu fetched, latest %.2f/s, mean %.2f/s\n",
                  static_cast<unsigned long long>(throttle.total()), latest.rate_per_sec,
                  mean.rate_per_sec);
      std::fflush(stdout);
    }
    const auto [runtime, total, mean_interval_s, mean_rate] = throttle.stop();
    std::printf("coordinator: %llu fetches in %.2f s, %.3f per second\n",
                static_cast<unsigned long long>(total), runtime.count(), mean_rate);
    // Give the workers a moment to see the kill flag before the name goes away (they keep
    // their mapping either way).
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return 0;
  } catch (const mpt::InvalidArgument& e) {
    std::fprintf(stderr, "coordinator: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coordinator: %s\n", e.what());
    return 1;
  }
}
