/* examples/c/throttle.c — the seed README example through the C ABI (mpt/mpt.h): 4 worker
 * processes share 4 units per second for 5 seconds (change with: throttle_c RATE SECONDS). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mpt/mpt.h"

int main(int argc, char** argv) {
  const long rate = argc > 1 ? strtol(argv[1], NULL, 10) : 4;
  const unsigned seconds = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 5;
  const int workers = 4;

  mpt_throttle* t = NULL;
  mpt_error err = mpt_throttle_create_anonymous(rate, 1.0, NULL, &t);
  if (err != MPT_OK) {
    fprintf(stderr, "throttle_c: %s: %s\n", mpt_strerror(err), mpt_last_error());
    return 1;
  }
  for (int i = 0; i < workers; ++i) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 1;
    }
    if (pid == 0) {
      while (!mpt_throttle_killed(t)) {
        if (mpt_throttle_await_fuel(t, 1, -1)) {
          /* do something */
        }
      }
      _exit(0);
    }
  }
  mpt_throttle_start(t);
  for (unsigned i = 0; i < seconds; ++i) {
    sleep(1);
    mpt_snapshot snap;
    if (mpt_throttle_snapshot(t, &snap) == MPT_OK) {
      printf("latest (%.4f, %.2f)  mean (%.4f, %.2f)\n", snap.latest.interval_s,
             snap.latest.rate_per_sec, snap.mean.interval_s, snap.mean.rate_per_sec);
    }
  }
  mpt_summary s;
  mpt_throttle_stop(t, &s);
  while (wait(NULL) > 0) {
  }
  mpt_throttle_close(t);
  printf("Runtime: %f\n", s.runtime_s);
  printf("Total: %llu\n", (unsigned long long)s.total);
  printf("Mean frequency: %f\n", s.mean_interval_s);
  printf("Processes per second: %f\n", s.mean_rate_per_sec);
  return 0;
}
