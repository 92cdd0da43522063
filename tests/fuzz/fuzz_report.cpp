// libFuzzer: any bytes as a report given to `mpt report`. parse_report must accept or throw
// ReportError naming the field: never crash, hang or read out of bounds; what it accepts must
// render (text and HTML, alone and compared with itself) without failing.
#include <cstdint>
#include <string_view>

#include "report_model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto r = mpt::report::parse_report(text);
    (void)mpt::report::render_text(r, nullptr);
    (void)mpt::report::render_html(r, nullptr);
    (void)mpt::report::render_html(r, &r);
  } catch (const mpt::report::ReportError&) {
  }
  return 0;
}
