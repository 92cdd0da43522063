// The C ABI's error codes (mpt/mpt.h): every mpt::ErrorCode has the C code of its number, the C
// ABI's own codes keep theirs, and a failure comes back as the code that names it.
#include "mpt/mpt.h"

#include <gtest/gtest.h>

#include <string>

#include "../test_util.hpp"
#include "mpt/error.hpp"

namespace mpt {
namespace {

TEST(CApiTest, ErrorCodesMirrorErrorCodeAndKeepThePublishedNumbers) {
  // Published with these numbers: a program compiled against an older mpt.h still reads them.
  EXPECT_EQ(MPT_E_NO_MEMORY, 7);
  EXPECT_EQ(MPT_E_UNKNOWN, 8);
  EXPECT_STREQ(mpt_strerror(MPT_E_NO_MEMORY), "out of memory");
  EXPECT_STREQ(mpt_strerror(MPT_E_UNKNOWN), "unknown error");
  for (ErrorCode c : {ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kAlreadyExists,
                      ErrorCode::kPermissionDenied, ErrorCode::kIncompatible, ErrorCode::kSystem,
                      ErrorCode::kUnavailable}) {
    EXPECT_STREQ(mpt_strerror(static_cast<int>(c)), to_string(c)) << static_cast<int>(c);
  }
  EXPECT_EQ(MPT_E_UNAVAILABLE, static_cast<int>(ErrorCode::kUnavailable));
  EXPECT_STREQ(mpt_strerror(MPT_E_UNAVAILABLE), "unavailable");
  EXPECT_STREQ(mpt_strerror(10), "unknown error");
}

TEST(CApiTest, AFailureReturnsTheCodeOfItsErrorCode) {
  mpt_throttle* t = nullptr;
  const std::string name = test::unique_name("capi-missing");
  EXPECT_EQ(mpt_throttle_open(name.c_str(), &t), MPT_E_NOT_FOUND);
  EXPECT_EQ(t, nullptr);
  EXPECT_NE(std::string(mpt_last_error()).find(name), std::string::npos) << mpt_last_error();
  EXPECT_EQ(mpt_throttle_create_anonymous(0, 1.0, nullptr, &t), MPT_E_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace mpt
