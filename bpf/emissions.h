/* bpf/emissions.h — the types shared by emissions.bpf.c (kernel side) and user space.
 *
 * Plain C, no pointers, __u64 first, explicit padding, units in the names. The map `stats` holds
 * one struct mpt_stats per (throttle id, tgid, kind): kind MPT_KIND_EMIT counts the USDT probe
 * mpthrottle:emit and histograms the intervals between emissions; kind MPT_KIND_FUEL counts
 * mpthrottle:fuel and histograms how long each successful await_fuel waited.
 * Timestamps are bpf_ktime_get_ns(): CLOCK_MONOTONIC, the clock the library uses.
 */
#ifndef MPT_BPF_EMISSIONS_H
#define MPT_BPF_EMISSIONS_H

#include <linux/types.h>

#define MPT_HIST_SLOTS \
  40 /* log2 buckets: slot i counts values in [2^i, 2^(i+1)) ns; slot 0: < 2 ns */
#define MPT_KIND_EMIT 0
#define MPT_KIND_FUEL 1
#define MPT_MAX_ENTRIES 16384

struct mpt_key {
  __u64 throttle_id;
  __u32 tgid;
  __u32 kind; /* MPT_KIND_* */
};

struct mpt_stats {
  __u64 count;
  __u64 first_ns;     /* kernel time of the first event */
  __u64 last_ns;      /* kernel time of the latest event */
  __u64 min_value_ns; /* shortest interval (emit) or wait (fuel); UINT64_MAX: none yet */
  __u64 max_value_ns; /* longest interval (emit) or wait (fuel) */
  __u64 sum_value_ns; /* sum of intervals (emit) or waits (fuel) */
  __u64 hist[MPT_HIST_SLOTS];
};

#ifdef __cplusplus
static_assert(sizeof(struct mpt_key) == 16, "mpt_key layout");
static_assert(sizeof(struct mpt_stats) == 48 + 8 * MPT_HIST_SLOTS, "mpt_stats layout");
#endif

#endif
