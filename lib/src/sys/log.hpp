// Internal: the library's warnings, through the log hook of mpt/calibration.hpp (set_log_hook).
#pragma once

#include <string>

namespace mpt::detail {

// Sends one warning (one line, no newline) to the log hook (stderr by default), called without
// the library's lock held; a hook that throws loses the message.
void warn(const std::string& message) noexcept;

}  // namespace mpt::detail
