// SPDX-License-Identifier: GPL-2.0
/* bpf/emissions.bpf.c — counts mpthrottle's USDT probes in the kernel, per (throttle, process).
 *
 * Needs only uapi headers: a USDT program reads its arguments through libbpf's usdt.bpf.h, which
 * takes register offsets from user space, so no vmlinux.h and no dependency on the build host's
 * kernel. Attached by `mpt probe` and the tests with bpf_program__attach_usdt().
 */
// The uapi types must come before libbpf's headers.
// clang-format off
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>
// clang-format on

#include "emissions.h"

char LICENSE[] SEC("license") = "GPL";

/* Set before load: 0 = every process, else only this tgid. */
const volatile __u32 filter_tgid = 0;
/* Set before load: 0 = every throttle, else only this throttle id (ids are never 0). */
const volatile __u64 filter_throttle_id = 0;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MPT_MAX_ENTRIES);
  __type(key, struct mpt_key);
  __type(value, struct mpt_stats);
} stats SEC(".maps");

/* Events dropped because the map was full. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} dropped SEC(".maps");

static __always_inline __u32 log2_slot(__u64 v) {
  __u32 slot = 0;
#pragma unroll
  for (int i = 32; i > 0; i >>= 1) {
    if (v >= (1ULL << i)) {
      v >>= i;
      slot += i;
    }
  }
  return slot < MPT_HIST_SLOTS ? slot : MPT_HIST_SLOTS - 1;
}

static __always_inline void record(__u64 throttle_id, __u32 kind, __u64 waited_ns) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  if (filter_tgid && tgid != filter_tgid) return;
  if (filter_throttle_id && throttle_id != filter_throttle_id) return;
  __u64 now = bpf_ktime_get_ns();
  struct mpt_key key = {.throttle_id = throttle_id, .tgid = tgid, .kind = kind};
  struct mpt_stats* s = bpf_map_lookup_elem(&stats, &key);
  if (!s) {
    struct mpt_stats zero = {.min_value_ns = ~0ULL};
    if (bpf_map_update_elem(&stats, &key, &zero, BPF_NOEXIST) &&
        bpf_map_lookup_elem(&stats, &key) == 0) {
      __u32 k = 0;
      __u64* d = bpf_map_lookup_elem(&dropped, &k);
      if (d) __sync_fetch_and_add(d, 1);
      return;
    }
    s = bpf_map_lookup_elem(&stats, &key);
    if (!s) return;
  }
  __u64 value;
  int have_value;
  if (kind == MPT_KIND_EMIT) {
    /* interval since this process's previous emission on this throttle */
    __u64 last = s->last_ns;
    have_value = last != 0 && now >= last;
    value = have_value ? now - last : 0;
  } else {
    have_value = 1;
    value = waited_ns;
  }
  if (s->count == 0) s->first_ns = now;
  s->last_ns = now;
  __sync_fetch_and_add(&s->count, 1);
  if (have_value) {
    if (value < s->min_value_ns) s->min_value_ns = value;
    if (value > s->max_value_ns) s->max_value_ns = value;
    __sync_fetch_and_add(&s->sum_value_ns, value);
    __u32 slot = log2_slot(value);
    __sync_fetch_and_add(&s->hist[slot], 1);
  }
}

SEC("usdt")
int BPF_USDT(on_emit, __u64 throttle_id, __s64 monotonic_ns) {
  (void)monotonic_ns;
  record(throttle_id, MPT_KIND_EMIT, 0);
  return 0;
}

SEC("usdt")
int BPF_USDT(on_fuel, __u64 throttle_id, __s64 waited_ns) {
  record(throttle_id, MPT_KIND_FUEL, waited_ns < 0 ? 0 : (__u64)waited_ns);
  return 0;
}
