// Internal: the library's warnings, through the log hook of mpt/calibration.hpp (set_log_hook).
#pragma once

#include <string>

namespace mpt::detail {

// Sends one warning (one line, no newline) to the log hook: stderr by default.
void warn(const std::string& message);

}  // namespace mpt::detail
