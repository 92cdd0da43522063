// The USDT semaphores: a tracer that attaches to mpthrottle:emit or mpthrottle:fuel increments
// these, and the probe sites compute their arguments only while they are non-zero.
#include "probes.hpp"

extern "C" {
__attribute__((section(".probes"), visibility("hidden"))) unsigned short mpthrottle_emit_semaphore =
    0;
__attribute__((section(".probes"), visibility("hidden"))) unsigned short mpthrottle_fuel_semaphore =
    0;
}
