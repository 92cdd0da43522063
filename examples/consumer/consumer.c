/* Links an installed mpthrottle through its C ABI. */
#include <stdio.h>

#include "mpt/mpt.h"

int main(void) {
  mpt_throttle* t = NULL;
  mpt_error err = mpt_throttle_create_anonymous(100, 1.0, NULL, &t);
  if (err != MPT_OK) {
    fprintf(stderr, "consumer_c: %s: %s\n", mpt_strerror(err), mpt_last_error());
    return 1;
  }
  mpt_throttle_start(t);
  int taken = 0;
  for (int i = 0; i < 10; ++i)
    taken += mpt_throttle_await_fuel(t, 1, -1);
  mpt_summary s;
  mpt_throttle_stop(t, &s);
  mpt_throttle_close(t);
  printf("consumer_c: mpthrottle %s, %d taken, total %llu\n", mpt_version(), taken,
         (unsigned long long)s.total);
  return (taken == 10 && s.total == 10) ? 0 : 1;
}
