// A separate program (started with exec by the tests) that attaches to a named throttle and works
// until it is stopped, like an unrelated crawler process would. Prints how many units it took.
//
//   throttle_helper NAME            loop on await_fuel until the kill flag is set
//   throttle_helper NAME --once     one await_fuel without timeout; exit 0 if it got fuel, 3 if not
#include <cstdio>
#include <cstring>
#include <exception>

#include "mpt/throttle.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: throttle_helper NAME [--once]\n");
    return 2;
  }
  try {
    auto t = mpt::Throttle::open(argv[1]);
    if (argc > 2 && std::strcmp(argv[2], "--once") == 0) {
      std::printf("waiting\n");
      std::fflush(stdout);
      return t.await_fuel() ? 0 : 3;
    }
    long taken = 0;
    auto kill = t.kill_flag();
    while (!kill.is_set()) {
      if (t.await_fuel()) ++taken;
    }
    std::printf("%ld\n", taken);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "throttle_helper: %s\n", e.what());
    return 1;
  }
}
