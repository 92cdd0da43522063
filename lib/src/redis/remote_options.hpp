// Internal: RemoteOptions checked, and turned into the options of the local fallback throttle
// (remote_api.cpp; built with and without Redis support, so that a bad option is the same error
// in both).
#pragma once

#include <chrono>
#include <cstdint>

#include "mpt/redis.hpp"
#include "mpt/throttle.hpp"

namespace mpt::detail {

// Throws InvalidArgument naming the first bad option (those a local throttle shares with it are
// checked as the local throttle checks them).
void validate_remote_options(const RemoteOptions& o);
// max_n per `per` with the correction connect() gives a new throttle, checked like a local rate.
void validate_remote_rate(std::int64_t max_n, std::chrono::duration<double> per,
                          const RemoteOptions& o);
// The options of this process's local throttle (kill flag, spin lead, kLocalFallback schedule):
// the options it shares with a remote throttle. No calibration: the correction is always given.
ThrottleOptions local_options(const RemoteOptions& o);

}  // namespace mpt::detail
