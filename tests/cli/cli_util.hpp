// Helpers the tests of the `mpt` command share (tests/cli).
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <nlohmann/json.hpp>
#include <string>

namespace mpt::test {

// The JSON `mpt` printed; a test failure (and null) when it is not JSON.
inline nlohmann::json parse(const std::string& s) {
  try {
    return nlohmann::json::parse(s);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "): " << s;
    return nlohmann::json();
  }
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace mpt::test
