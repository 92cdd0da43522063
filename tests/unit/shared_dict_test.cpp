// SharedDict / ByteDict in one process: the operations, the errors, named segments, and recovery
// from every state a writer killed inside set() or erase() can leave (made by hand in a child
// that then exits holding the mutex).
#include "mpt/shared_dict.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../test_util.hpp"
#include "mpt/error.hpp"
#include "mpt/process.hpp"
#include "mpt/shared_record.hpp"
#include "shared_dict_layout.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;
using Dict = SharedDict<std::string, std::string>;

ByteView view(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

TEST(SharedDictTest, GetSetEraseContainsSize) {
  auto d = Dict::anonymous({.capacity = 8, .max_key_bytes = 16, .max_value_bytes = 32});
  EXPECT_EQ(d.size(), 0u);
  EXPECT_EQ(d.get("a"), std::nullopt);
  EXPECT_TRUE(d.set("a", "1"));
  EXPECT_FALSE(d.insert_or_assign("a", "one"));
  EXPECT_TRUE(d.set("b", ""));
  EXPECT_TRUE(d.set("", "empty key"));
  EXPECT_EQ(d.get("a"), "one");
  EXPECT_EQ(d.get("b"), "");
  EXPECT_EQ(d.get(""), "empty key");
  EXPECT_TRUE(d.contains("b"));
  EXPECT_EQ(d.size(), 3u);
  EXPECT_TRUE(d.erase("b"));
  EXPECT_FALSE(d.erase("b"));
  EXPECT_FALSE(d.contains("b"));
  EXPECT_EQ(d.size(), 2u);
  d.clear();
  EXPECT_EQ(d.size(), 0u);
  EXPECT_EQ(d.get("a"), std::nullopt);
  EXPECT_TRUE(d.items().empty());
}

TEST(SharedDictTest, TypedKeysAndValuesThroughTheCodec) {
  auto d = SharedDict<int, std::vector<double>>::anonymous({.capacity = 4});
  d.set(7, {1.5, 2.5});
  EXPECT_EQ(d.get(7), (std::vector<double>{1.5, 2.5}));
  EXPECT_EQ(d.update(7,
                     [](std::optional<std::vector<double>> v) {
                       v->push_back(3.5);
                       return *v;
                     }),
            (std::vector<double>{1.5, 2.5, 3.5}));
  auto counters = SharedDict<std::string, long>::anonymous({.capacity = 4});
  EXPECT_EQ(counters.update("n", [](std::optional<long> v) { return v.value_or(0) + 1; }), 1);
  EXPECT_EQ(counters.update("n", [](std::optional<long> v) { return v.value_or(0) + 1; }), 2);
}

TEST(SharedDictTest, ItemsHoldEveryEntryOnce) {
  auto d = SharedDict<int, int>::anonymous({.capacity = 100});
  for (int i = 0; i < 100; ++i)
    d.set(i, i * i);
  auto items = d.items();
  std::sort(items.begin(), items.end());
  ASSERT_EQ(items.size(), 100u);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(items[i], std::make_pair(i, i * i));
}

// Many inserts and erases leave deleted marks in the index; the dict compacts it and stays right.
TEST(SharedDictTest, ChurnKeepsEveryLiveEntryReachable) {
  auto d = SharedDict<int, int>::anonymous({.capacity = 16});
  std::map<int, int> model;
  for (int round = 0; round < 2000; ++round) {
    const int k = (round * 7919) % 40;
    if (model.count(k) || model.size() == 16) {
      EXPECT_EQ(d.erase(k), model.erase(k) == 1) << round;
    } else {
      d.set(k, round);
      model[k] = round;
    }
  }
  EXPECT_EQ(d.size(), model.size());
  for (int k = 0; k < 40; ++k)
    EXPECT_EQ(d.get(k), model.count(k) ? std::optional<int>(model[k]) : std::nullopt) << k;
}

TEST(SharedDictTest, FullDictRefusesANewKeyNamingTheCapacityButReplacesOldOnes) {
  auto d = SharedDict<int, int>::anonymous({.capacity = 3});
  for (int i = 0; i < 3; ++i)
    d.set(i, i);
  try {
    d.set(3, 3);
    FAIL() << "no error for a fourth key";
  } catch (const CapacityExceeded& e) {
    EXPECT_NE(std::string(e.what()).find("capacity is 3 entries"), std::string::npos) << e.what();
  }
  EXPECT_THROW(d.update(4, [](std::optional<int>) { return 1; }), CapacityExceeded);
  d.set(1, 10);  // a key already there needs no new entry
  EXPECT_EQ(d.get(1), 10);
  EXPECT_EQ(d.size(), 3u);
  d.erase(0);
  d.set(3, 3);
  EXPECT_EQ(d.get(3), 3);
}

TEST(SharedDictTest, OversizeKeyOrValueIsAnErrorNamingBothSizes) {
  auto d = Dict::anonymous({.capacity = 2, .max_key_bytes = 4, .max_value_bytes = 10});
  d.set("abcd", std::string(10, 'x'));
  const auto expect_both = [](auto&& f, const char* size, const char* limit) {
    try {
      f();
      FAIL() << "no error";
    } catch (const InvalidArgument& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(size), std::string::npos) << m;
      EXPECT_NE(m.find(limit), std::string::npos) << m;
    }
  };
  expect_both([&] { d.set("abcde", "v"); }, "key of 5 bytes", "max_key_bytes 4");
  expect_both([&] { d.set("k", std::string(11, 'y')); }, "value of 11 bytes", "max_value_bytes 10");
  expect_both([&] { d.update("k", [](auto) { return std::string(11, 'z'); }); },
              "value of 11 bytes", "max_value_bytes 10");
  EXPECT_EQ(d.get("abcde"), std::nullopt);  // cannot be there: no error
  EXPECT_FALSE(d.contains("k"));
  EXPECT_EQ(d.size(), 1u);
}

TEST(SharedDictTest, BadOptionsAndNamesAreErrors) {
  EXPECT_THROW(Dict::anonymous({.capacity = 0}), InvalidArgument);
  EXPECT_THROW(Dict::anonymous({.capacity = 5'000'000}), InvalidArgument);
  EXPECT_THROW(Dict::anonymous({.max_key_bytes = 0}), InvalidArgument);
  EXPECT_THROW(Dict::anonymous({.max_value_bytes = 17u << 20}), InvalidArgument);
  try {
    (void)Dict::anonymous({.capacity = 1'000'000, .max_value_bytes = 1000});
    FAIL() << "a dict larger than a segment";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("segment limit"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Dict::create("bad name"), InvalidArgument);
  EXPECT_THROW(Dict::open(test::unique_name("absent-dict")), NotFound);
}

TEST(SharedDictTest, NamedDictIsSharedAndOpenChecksTheKind) {
  const std::string name = test::unique_name("dict");
  auto d = Dict::create(name, {.capacity = 4});
  auto e = Dict::open(name);
  d.set("x", "y");
  EXPECT_EQ(e.get("x"), "y");
  EXPECT_EQ(e.bytes().capacity(), 4u);
  EXPECT_EQ(Segment::inspect(name).kind, SegmentKind::kDict);
  EXPECT_STREQ(to_string(SegmentKind::kDict), "dict");
  EXPECT_THROW(Dict::create(name), AlreadyExists);
  EXPECT_THROW(Queue::open(name), IncompatibleSegment);
}

// open() refuses a dict whose recorded geometry does not match its file.
TEST(SharedDictTest, OpenRefusesACorruptLayout) {
  const std::string name = test::unique_name("dict-corrupt");
  auto d = Dict::create(name, {.capacity = 4});
  auto* s = static_cast<ByteDict::Shared*>(d.bytes().segment()->body());
  s->capacity = 5;
  EXPECT_THROW(Dict::open(name), IncompatibleSegment);
  s->capacity = 4;
  s->buckets = 1024;
  EXPECT_THROW(Dict::open(name), IncompatibleSegment);
  s->buckets = 8;
  s->magic = 0;
  EXPECT_THROW(Dict::open(name), IncompatibleSegment);
  s->magic = detail::kDictMagic;
  EXPECT_NO_THROW(Dict::open(name));
}

// --- SharedRecord
// ---------------------------------------------------------------------------------

struct Record {
  std::atomic<std::int64_t> count{5};
  std::atomic<double> level{0.5};
  char label[16];
};

TEST(SharedRecordTest, ValueInitialisedSharedWithChildrenAndOpenChecksTheSize) {
  auto r = SharedRecord<Record>::anonymous();
  EXPECT_EQ(r->count.load(), 5);
  EXPECT_EQ(r->level.load(), 0.5);
  EXPECT_EQ(r->label[0], '\0');
  Process child([&] {
    r->count.fetch_add(10);
    std::strcpy(r->label, "child");
  });
  child.start();
  ASSERT_TRUE(child.join(10s));
  EXPECT_EQ(r->count.load(), 15);
  EXPECT_STREQ(r->label, "child");

  const std::string name = test::unique_name("record");
  auto named = SharedRecord<Record>::create(name);
  named->level.store(2.5);
  EXPECT_EQ(SharedRecord<Record>::open(name)->level.load(), 2.5);
  EXPECT_EQ(Segment::inspect(name).kind, SegmentKind::kRecord);
  EXPECT_STREQ(to_string(SegmentKind::kRecord), "record");
  struct Other {
    std::atomic<std::int64_t> a;
  };
  EXPECT_THROW(SharedRecord<Other>::open(name), IncompatibleSegment);
  EXPECT_THROW(SharedRecord<Record>::open(test::unique_name("absent-record")), NotFound);
  EXPECT_THROW(Dict::open(name), IncompatibleSegment);
}

// --- Recovery: the states a killed writer leaves ------------------------------------------------

struct Inside {
  ByteDict::Shared* s;
  std::byte* base;
  std::size_t slot_bytes() const { return s->slot_bytes; }
  detail::DictSlotHead* head(std::size_t n) const {
    const std::size_t off = (Segment::kBodyOffset + sizeof(ByteDict::Shared) + 63) / 64 * 64;
    return reinterpret_cast<detail::DictSlotHead*>(base + off + n * s->slot_bytes);
  }
  // The slot holding `key` with the highest stamp, or -1.
  long find(const std::string& key) const {
    long best = -1;
    for (std::size_t n = 0; n <= s->capacity; ++n) {
      auto* h = head(n);
      if (h->stamp.load() != 0 && h->key_len == key.size() &&
          std::memcmp(reinterpret_cast<std::byte*>(h) + sizeof *h, key.data(), key.size()) == 0)
        if (best < 0 || h->stamp.load() > head(best)->stamp.load()) best = static_cast<long>(n);
    }
    return best;
  }
};

Inside inside(ByteDict& d) {
  return {static_cast<ByteDict::Shared*>(d.segment()->body()),
          static_cast<std::byte*>(d.segment()->data())};
}

// Runs `scribble` in a child that holds the dict's mutex and then exits without releasing it,
// as a writer killed at that point would.
void die_holding(ByteDict& d, const std::function<void(Inside)>& scribble) {
  Process p([&] {
    Inside in = inside(d);
    pthread_mutex_lock(&in.s->mutex);
    scribble(in);
    _exit(0);
  });
  p.start();
  ASSERT_TRUE(p.join(10s));
  ASSERT_EQ(p.exitcode(), 0);
}

// Killed after publishing the new value of "k" in a free slot, before the index pointed at it and
// before the old slot was freed: two slots hold "k"; the newer wins.
TEST(SharedDictRecoveryTest, KilledBetweenPublishingAndFreeingTheOldSlot) {
  auto d = ByteDict::anonymous({.capacity = 4, .max_key_bytes = 8, .max_value_bytes = 8});
  d.set(view("k"), view("old"));
  d.set(view("other"), view("o"));
  die_holding(d, [](Inside in) {
    const long old = in.find("k");
    std::size_t free_slot = 0;
    while (in.head(free_slot)->stamp.load() != 0)
      ++free_slot;
    std::memcpy(static_cast<void*>(in.head(free_slot)), in.head(old), in.slot_bytes());
    auto* h = in.head(free_slot);
    std::memcpy(reinterpret_cast<std::byte*>(h) + sizeof *h + in.s->max_key_bytes, "new", 3);
    --in.s->free_top;
    h->stamp.store(++in.s->generation);
  });
  EXPECT_EQ(d.get(view("k")),
            (std::optional<Bytes>(Bytes{std::byte{'n'}, std::byte{'e'}, std::byte{'w'}})));
  EXPECT_EQ(d.recoveries(), 1u);
  EXPECT_EQ(d.size(), 2u);
  // Every free slot is usable again: fill the dict to its capacity.
  d.set(view("c"), view("3"));
  d.set(view("d"), view("4"));
  EXPECT_THROW(d.set(view("e"), view("5")), CapacityExceeded);
  EXPECT_EQ(d.items().size(), 4u);
}

// Killed half way through writing a new entry (not yet stamped): as if set() never ran.
TEST(SharedDictRecoveryTest, KilledWhileWritingAnUnpublishedSlot) {
  auto d = SharedDict<std::string, std::string>::anonymous({.capacity = 2});
  d.set("a", "1");
  die_holding(d.bytes(), [](Inside in) {
    auto* h = in.head(in.find("a") == 0 ? 1 : 0);
    h->key_len = 1;
    h->value_len = 999999;  // garbage the writer had not finished
    in.s->free_top = 0;     // and it had popped the slot
  });
  EXPECT_EQ(d.get("a"), "1");
  EXPECT_EQ(d.size(), 1u);
  d.set("b", "2");
  EXPECT_EQ(d.get("b"), "2");
}

// Killed after an erase's commit (the stamp cleared) before the index and counts followed.
TEST(SharedDictRecoveryTest, KilledInsideEraseAndInsideClear) {
  auto d = SharedDict<std::string, std::string>::anonymous({.capacity = 3});
  d.set("a", "1");
  d.set("b", "2");
  d.set("c", "3");
  die_holding(d.bytes(), [](Inside in) { in.head(in.find("b"))->stamp.store(0); });
  EXPECT_FALSE(d.contains("b"));
  EXPECT_EQ(d.size(), 2u);
  die_holding(d.bytes(), [](Inside in) { in.head(in.find("a"))->stamp.store(0); });
  EXPECT_EQ(d.items(), (std::vector<std::pair<std::string, std::string>>{{"c", "3"}}));
  d.set("x", "1");
  d.set("y", "2");
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(d.bytes().recoveries(), 2u);
}

// A process that writes into a live dict (see docs/reliability.md on writers of a segment) can
// make answers wrong, but never make an operation read or write outside the segment: the slot
// lengths, the free stack and the entry count are bounded on every use.
TEST(SharedDictTest, AScribbledDictNeverSendsAnOperationOutsideItsSegment) {
  auto fresh = [] {
    auto d = ByteDict::anonymous({.capacity = 4, .max_key_bytes = 8, .max_value_bytes = 8});
    d.set(view("a"), view("1"));
    return d;
  };
  auto shared = [](ByteDict& d) { return static_cast<ByteDict::Shared*>(d.segment()->body()); };
  auto base = [](ByteDict& d) { return static_cast<std::byte*>(d.segment()->data()); };
  const auto round_up = [](std::size_t n, std::size_t a) { return (n + a - 1) / a * a; };
  const std::size_t slots_at = round_up(Segment::kBodyOffset + sizeof(ByteDict::Shared), 64);
  auto slot = [&](ByteDict& d, std::size_t n) {
    return reinterpret_cast<detail::DictSlotHead*>(base(d) + slots_at + n * shared(d)->slot_bytes);
  };
  auto each_live_slot = [&](ByteDict& d, auto&& fn) {
    for (std::size_t n = 0; n <= shared(d)->capacity; ++n)
      if (slot(d, n)->stamp.load() != 0) fn(slot(d, n));
  };

  {  // a free-stack entry far past the slots: refused, nothing written
    ByteDict d = fresh();
    ByteDict::Shared* s = shared(d);
    const std::size_t index_at = round_up(slots_at + (s->capacity + 1) * s->slot_bytes, 64);
    auto* free_stack =
        reinterpret_cast<std::uint32_t*>(base(d) + round_up(index_at + s->buckets * 4, 64));
    free_stack[s->free_top - 1] = 0xfffffff0u;
    EXPECT_THROW(d.set(view("new"), view("x")), IncompatibleSegment);
  }
  {  // value and key lengths of 1 GiB: read as at most the dict's limits
    ByteDict d = fresh();
    each_live_slot(d, [](detail::DictSlotHead* h) { h->value_len = 1u << 30; });
    const auto got = d.get(view("a"));
    ASSERT_TRUE(got);
    EXPECT_LE(got->size(), d.max_value_bytes());
    each_live_slot(d, [](detail::DictSlotHead* h) { h->key_len = 1u << 30; });
    for (const auto& [k, v] : d.items()) {
      EXPECT_LE(k.size(), d.max_key_bytes());
      EXPECT_LE(v.size(), d.max_value_bytes());
    }
  }
  {  // an entry count of 2^62: items() does not try to reserve it
    ByteDict d = fresh();
    shared(d)->live = std::uint64_t{1} << 62;
    EXPECT_EQ(d.items().size(), 1u);
  }
}

}  // namespace
}  // namespace mpt
