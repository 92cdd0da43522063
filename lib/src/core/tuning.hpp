// Internal: the correction and spin lead a new throttle starts with, and where they came from.
#pragma once

#include <cstdint>
#include <string>

#include "mpt/throttle.hpp"

namespace mpt::detail {

// The longest spin lead a throttle takes (options, calibration file): 10 ms.
inline constexpr std::int64_t kMaxSpinLeadNs = 10'000'000;

struct Tuning {
  double correction = 0;
  std::int64_t spin_lead_ns = 0;
  std::string source = "none";  // "none", "explicit", or "calibration <path>"
  // Set when auto_calibrate applies, no calibration covers this rate and hardcap, and this host
  // is known to fall short there (see calibration::falls_short_uncalibrated); sent to the log hook
  // once per process and message.
  std::string warning;
};

// An explicit correction wins; else, with auto_calibrate (default: rate >= 49/s), the host's
// calibration file (loaded once per process; bad files are ignored with one warning); else none.
// An explicit spin lead always wins over the file's.
Tuning resolve_tuning(std::int64_t max_n, double per_s, const ThrottleOptions& options);

}  // namespace mpt::detail
