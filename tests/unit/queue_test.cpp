#include "mpt/queue.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "../test_util.hpp"
#include "mpt/error.hpp"
#include "queue_shared.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

std::vector<std::byte> bytes(std::size_t n, std::uint8_t fill) {
  return std::vector<std::byte>(n, std::byte{fill});
}

TEST(QueueTest, FifoAndSize) {
  auto q = Queue::anonymous({.capacity = 4, .max_message_bytes = 16});
  EXPECT_EQ(q.size(), 0u);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(q.put_value(i, 0ns));
  EXPECT_EQ(q.size(), 4u);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(q.get_value<int>(0ns), i);
  EXPECT_EQ(q.get_value<int>(0ns), std::nullopt);
}

TEST(QueueTest, FullQueuePutTimesOutAndEmptyGetTimesOut) {
  auto q = Queue::anonymous({.capacity = 1, .max_message_bytes = 8});
  ASSERT_TRUE(q.put("a", 0ns));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(q.put("b", 30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
  ASSERT_TRUE(q.get(0ns));
  t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(q.get(30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
  EXPECT_FALSE(q.get(-1ms));
}

TEST(QueueTest, MaximumSizeFitsAndOneByteOverIsAnErrorNamingBothSizes) {
  auto q = Queue::anonymous({.capacity = 2, .max_message_bytes = 1000});
  const auto max = bytes(1000, 0xab);
  ASSERT_TRUE(q.put(max, 0ns));
  try {
    (void)q.put(bytes(1001, 1), 0ns);
    FAIL() << "no error for a message one byte too large";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("1001"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1000"), std::string::npos) << e.what();
  }
  auto got = q.get(0ns);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, max);
  EXPECT_EQ(q.size(), 0u);  // the oversized message was not enqueued, not even truncated
}

TEST(QueueTest, EmptyMessagesAreMessages) {
  auto q = Queue::anonymous({.capacity = 2, .max_message_bytes = 0});
  ASSERT_TRUE(q.put(std::string_view(), 0ns));
  auto got = q.get(0ns);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->empty());
}

TEST(QueueTest, CloseDrainsThenEnds) {
  auto q = Queue::anonymous({.capacity = 4, .max_message_bytes = 8});
  ASSERT_TRUE(q.put("x", 0ns));
  q.close();
  EXPECT_TRUE(q.closed());
  EXPECT_FALSE(q.put("y", 0ns));
  EXPECT_TRUE(q.get(1s));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(q.get(5s));  // closed and empty: returns at once
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

TEST(QueueTest, BadOptionsAreRejected) {
  EXPECT_THROW(Queue::anonymous({.capacity = 0}), InvalidArgument);
  EXPECT_THROW(Queue::anonymous({.capacity = 1 << 21}), InvalidArgument);
  EXPECT_THROW(Queue::anonymous({.capacity = 4096, .max_message_bytes = 1 << 20}), InvalidArgument);
}

TEST(QueueTest, NamedQueueIsSharedByNameAndValidated) {
  const std::string name = test::unique_name("queue");
  auto a = Queue::create(name, {.capacity = 3, .max_message_bytes = 100});
  auto b = Queue::open(name);
  EXPECT_EQ(b.capacity(), 3u);
  EXPECT_EQ(b.max_message_bytes(), 100u);
  ASSERT_TRUE(a.put_value(std::string("hello"), 0ns));
  EXPECT_EQ(b.get_value<std::string>(0ns), "hello");
  EXPECT_THROW(Queue::open(test::unique_name("missing")), NotFound);
  // Validated: the same file with its magic overwritten is no longer a queue.
  const int fd = ::open(Segment::path_for(name).c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const std::uint32_t bad = 0;
  ASSERT_EQ(::pwrite(fd, &bad, sizeof bad,
                     static_cast<off_t>(Segment::kBodyOffset + offsetof(Queue::Shared, magic))),
            static_cast<ssize_t>(sizeof bad));
  ::close(fd);
  EXPECT_THROW(Queue::open(name), IncompatibleSegment);
}

// Each field of the layout that open() relies on, corrupted in the file: IncompatibleSegment,
// and nothing is used (a capacity or slot size that does not match the file would index outside
// the mapping).
TEST(QueueTest, CorruptLayoutIsIncompatible) {
  struct Corruption {
    const char* field;
    std::size_t offset;
    std::uint64_t value;
    std::size_t bytes;
  };
  const Corruption corruptions[] = {
      {"magic", offsetof(Queue::Shared, magic), 0x12345678, 4},
      {"capacity", offsetof(Queue::Shared, capacity), 4, 8},  // one slot more than the file holds
      {"capacity 0", offsetof(Queue::Shared, capacity), 0, 8},
      {"slot_bytes", offsetof(Queue::Shared, slot_bytes), 64, 8},
      {"max_message_bytes", offsetof(Queue::Shared, max_message_bytes), 1000, 8},
      {"huge max_message_bytes", offsetof(Queue::Shared, max_message_bytes), ~0ULL, 8},
  };
  for (const Corruption& c : corruptions) {
    const std::string name = test::unique_name("queue-corrupt");
    auto q = Queue::create(name, {.capacity = 3, .max_message_bytes = 100});
    const int fd = ::open(Segment::path_for(name).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, &c.value, c.bytes, static_cast<off_t>(Segment::kBodyOffset + c.offset)),
              static_cast<ssize_t>(c.bytes));
    ::close(fd);
    try {
      (void)Queue::open(name);
      ADD_FAILURE() << "opened a queue with a corrupt " << c.field;
    } catch (const IncompatibleSegment& e) {
      EXPECT_NE(std::string(e.what()).find("corrupt or foreign layout"), std::string::npos)
          << c.field << ": " << e.what();
    }
  }
}

struct Point {
  int x;
  double y;
};

TEST(CodecTest, RoundTrips) {
  auto q = Queue::anonymous({.capacity = 8, .max_message_bytes = 1024});
  ASSERT_TRUE(q.put_value(Point{3, 4.5}, 0ns));
  auto p = q.get_value<Point>(0ns);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->x, 3);
  EXPECT_EQ(p->y, 4.5);
  const std::vector<std::uint8_t> raw{0, 1, 2, 255};
  ASSERT_TRUE(q.put_value(raw, 0ns));
  EXPECT_EQ(q.get_value<std::vector<std::uint8_t>>(0ns), raw);
  const std::vector<std::string> words{"a", "", "longer than fifteen chars"};
  ASSERT_TRUE(q.put_value(words, 0ns));
  EXPECT_EQ(q.get_value<std::vector<std::string>>(0ns), words);
  const std::vector<std::byte> b{std::byte{7}, std::byte{8}};
  ASSERT_TRUE(q.put_value(b, 0ns));
  EXPECT_EQ(q.get_value<std::vector<std::byte>>(0ns), b);
}

TEST(CodecTest, WrongSizeIsAnError) {
  auto q = Queue::anonymous({.capacity = 2, .max_message_bytes = 16});
  ASSERT_TRUE(q.put("abc", 0ns));
  EXPECT_THROW(q.get_value<std::uint64_t>(0ns), InvalidArgument);
}

}  // namespace
}  // namespace mpt
