// mpt::ThrottleLike: both throttle types satisfy it, and generic code drives either. In a build
// without Redis (MPT_REDIS=OFF), RemoteThrottle::connect() says so.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "mpt/error.hpp"
#include "mpt/redis.hpp"
#include "mpt/throttle.hpp"
#include "mpt/throttle_like.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

static_assert(ThrottleLike<Throttle>);
static_assert(ThrottleLike<RemoteThrottle>);
static_assert(!ThrottleLike<int>);
static_assert(!ThrottleLike<Event>);

// A worker loop written once for either type.
template <ThrottleLike T>
std::uint64_t take(T& throttle, int units) {
  for (int i = 0; i < units; ++i) {
    if (!throttle.await_fuel(1s)) break;
  }
  return throttle.total();
}

TEST(ThrottleLikeTest, GenericCodeDrivesALocalThrottle) {
  Throttle t(1000, 1s);
  t.start();
  EXPECT_EQ(take(t, 3), 3u);
  EXPECT_EQ(t.stop().total, 3u);
  EXPECT_TRUE(t.kill_flag().is_set());
}

#ifdef MPT_TEST_NO_REDIS
TEST(ThrottleLikeTest, ConnectSaysRedisIsNotBuiltIn) {
  try {
    (void)RemoteThrottle::connect("redis://127.0.0.1:6379/x", 10);
    FAIL() << "connect() returned in a build without Redis";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("built without Redis support (MPT_REDIS=OFF)"),
              std::string::npos)
        << e.what();
  }
  // A bad URL is the same error as in a build with Redis.
  try {
    (void)RemoteThrottle::connect("http://127.0.0.1:6379/x");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("scheme must be redis://"), std::string::npos) << e.what();
  }
}
#endif

}  // namespace
}  // namespace mpt
