// Internal: the Lua script of the Redis backend (throttle.lua, built in as a string by
// lib/CMakeLists.txt; see remote_impl.hpp for the keys and the protocol).
#pragma once

namespace mpt::detail {

extern const char kThrottleScript[];

}  // namespace mpt::detail
