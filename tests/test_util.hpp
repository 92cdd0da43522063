// Helpers shared by the tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "mpt/throttle.hpp"

namespace mpt::test {

// A segment name no other test run uses.
inline std::string unique_name(const std::string& what) {
  static std::atomic<int> counter{0};
  return "test-" + what + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

// Waits for a child with a bound; kills it and returns -1 if it does not finish in time.
inline int wait_child(pid_t pid, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// A child running the seed's worker loop (until the kill flag, or `max_units`); its exit status is
// the number of units it took, capped at 250.
inline pid_t fork_worker(Throttle& t, int max_units = -1) {
  pid_t pid = fork();
  if (pid == 0) {
    int taken = 0;
    auto kill = t.kill_flag();
    while (!kill.is_set() && (max_units < 0 || taken < max_units))
      taken += t.await_fuel() ? 1 : 0;
    _exit(taken < 250 ? taken : 250);
  }
  return pid;
}

struct WorkerRun {
  Summary summary;
  int units_reported = 0;  // the workers' own counts (each capped at 250)
  bool all_exited = true;  // every worker finished within 5 s of stop()
};

// Forks `workers` workers on `t`, starts it, lets them run for `run`, stops it and reaps them.
inline WorkerRun run_workers(Throttle& t, int workers, std::chrono::milliseconds run) {
  std::vector<pid_t> pids;
  for (int i = 0; i < workers; ++i)
    pids.push_back(fork_worker(t));
  t.start();
  std::this_thread::sleep_for(run);
  WorkerRun r;
  r.summary = t.stop();
  for (pid_t p : pids) {
    const int rc = wait_child(p, std::chrono::seconds(5));
    if (rc < 0)
      r.all_exited = false;
    else
      r.units_reported += rc;
  }
  return r;
}

}  // namespace mpt::test
