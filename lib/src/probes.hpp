// Internal: the USDT probes of provider `mpthrottle`, guarded by semaphores so that nothing is
// computed unless a tracer is attached.
//
//   mpthrottle:emit(u64 throttle_id, s64 monotonic_ns)   one per emission counted by the monitor
//   mpthrottle:fuel(u64 throttle_id, s64 waited_ns)      one per successful await_fuel/has_fuel
#pragma once

#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

extern "C" {
extern unsigned short mpthrottle_emit_semaphore;
extern unsigned short mpthrottle_fuel_semaphore;
}

#define MPT_PROBE_EMIT_ENABLED() __builtin_expect(mpthrottle_emit_semaphore != 0, 0)
#define MPT_PROBE_FUEL_ENABLED() __builtin_expect(mpthrottle_fuel_semaphore != 0, 0)
#define MPT_PROBE_EMIT(id, ns) STAP_PROBE2(mpthrottle, emit, id, ns)
#define MPT_PROBE_FUEL(id, ns) STAP_PROBE2(mpthrottle, fuel, id, ns)
