// libFuzzer: any bytes as a calibration file. from_json must accept or throw InvalidArgument
// naming the field: never crash or read out of bounds. What it accepts must round-trip exactly
// (to_json, from_json, to_json) and give a usable choice for any rate.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "mpt/calibration.hpp"
#include "mpt/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  mpt::Calibration c;
  try {
    c = mpt::Calibration::from_json(text);
  } catch (const mpt::InvalidArgument&) {
    return 0;
  }
  const std::string once = c.to_json();
  if (mpt::Calibration::from_json(once).to_json() != once) std::abort();
  for (double rate : {0.5, 49.0, 1000.0, 1e6}) {
    for (auto h : {mpt::Hardcap::kLimit, mpt::Hardcap::kOne, mpt::Hardcap::kNone}) {
      const auto choice = c.choose(rate, h);
      if (!(choice.correction > -0.5 - 1e-12 && choice.correction < 0.5 + 1e-12)) std::abort();
      if (choice.spin_lead_ns < 0 || choice.spin_lead_ns > 10'000'000) std::abort();
    }
  }
  return 0;
}
