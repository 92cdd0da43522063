// Segments: names, creation, validation of everything open() reads, and the races.
#include "mpt/segment.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "../test_util.hpp"
#include "mpt/error.hpp"
#include "mpt/event.hpp"
#include "mpt/throttle.hpp"
#include "throttle_shared.hpp"

namespace mpt {
namespace {

using test::unique_name;

constexpr std::size_t kSize = 4096;

std::shared_ptr<Segment> make(const std::string& name, const CreateOptions& o = {}) {
  return Segment::create(name, SegmentKind::kEvent, kSize, nullptr, o);
}

// Writes `bytes` to the segment file of `name` directly, as a foreign or broken writer would.
void write_file(const std::string& name, const std::vector<char>& bytes, mode_t mode = 0600) {
  const std::string path = Segment::path_for(name);
  int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, mode);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::fchmod(fd, mode);
  ::close(fd);
}

std::vector<char> valid_bytes(SegmentKind kind = SegmentKind::kEvent) {
  const std::string donor = unique_name("donor");
  auto seg = Segment::create(donor, kind, kSize, nullptr);
  std::vector<char> out(static_cast<char*>(seg->data()), static_cast<char*>(seg->data()) + kSize);
  return out;
}

TEST(SegmentTest, BadNamesAreRejected) {
  for (const std::string& bad :
       std::vector<std::string>{"", "a/b", "/x", ".", "..", "a b", std::string("a\0b", 3),
                                "caf\xc3\xa9", std::string(kMaxNameLength + 1, 'x')}) {
    EXPECT_THROW(make(bad), InvalidArgument) << "name '" << bad << "'";
    EXPECT_THROW(Segment::open(bad, SegmentKind::kEvent), InvalidArgument) << bad;
  }
  try {
    make("a/b");
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("'/'"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(Segment::validate_name(std::string(kMaxNameLength, 'x')));
}

TEST(SegmentTest, CreateWritesHeaderAndMode) {
  const std::string name = unique_name("hdr");
  auto seg = make(name);
  const auto& h = seg->header();
  EXPECT_EQ(h.magic, kSegmentMagic);
  EXPECT_EQ(h.abi_version, kAbiVersion);
  EXPECT_EQ(h.kind, static_cast<std::uint32_t>(SegmentKind::kEvent));
  EXPECT_EQ(h.size_bytes, kSize);
  EXPECT_NE(h.id, 0u);
  EXPECT_EQ(h.creator_pid, getpid());
  EXPECT_EQ(h.creator_uid, geteuid());
  struct stat st;
  ASSERT_EQ(::stat(Segment::path_for(name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), kSize);

  auto other = Segment::open(name, SegmentKind::kEvent);
  EXPECT_EQ(other->id(), seg->id());
  static_cast<char*>(seg->body())[0] = 42;
  EXPECT_EQ(static_cast<char*>(other->body())[0], 42) << "both handles map the same memory";
}

TEST(SegmentTest, CreatorUnlinksOnCloseUnlessPersist) {
  const std::string name = unique_name("life");
  {
    auto seg = make(name);
    EXPECT_FALSE(Segment::inspect(name).persistent);
  }
  EXPECT_THROW(Segment::open(name, SegmentKind::kEvent), NotFound);
  { auto seg = make(name, CreateOptions{.mode = 0600, .persist = true}); }
  EXPECT_NO_THROW(Segment::open(name, SegmentKind::kEvent));
  EXPECT_TRUE(Segment::inspect(name).persistent) << "the header records it: rm --stale keeps it";
  Segment::remove(name);
  EXPECT_THROW(Segment::remove(name), NotFound);
}

TEST(SegmentTest, ExistsIsReportedAndNothingIsChanged) {
  const std::string name = unique_name("exists");
  auto seg = make(name);
  const auto id = seg->id();
  try {
    make(name);
    FAIL() << "second create succeeded";
  } catch (const AlreadyExists& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
  EXPECT_EQ(Segment::open(name, SegmentKind::kEvent)->id(), id);
}

TEST(SegmentTest, RacingCreatorsExactlyOneWins) {
  for (int round = 0; round < 20; ++round) {
    const std::string name = unique_name("race");
    constexpr int kProcs = 4;
    pid_t pids[kProcs];
    for (int i = 0; i < kProcs; ++i) {
      pids[i] = fork();
      if (pids[i] == 0) {
        try {
          Segment::create(name, SegmentKind::kEvent, kSize, nullptr,
                          {.mode = 0600, .persist = true});
          _exit(0);
        } catch (const AlreadyExists&) {
          _exit(1);
        } catch (...) {
          _exit(2);
        }
      }
    }
    int winners = 0, losers = 0;
    for (pid_t p : pids) {
      const int rc = test::wait_child(p);
      winners += rc == 0;
      losers += rc == 1;
    }
    EXPECT_EQ(winners, 1) << "round " << round;
    EXPECT_EQ(losers, kProcs - 1) << "round " << round;
    Segment::remove(name);
  }
}

TEST(SegmentTest, OpenMissingIsNotFound) {
  EXPECT_THROW(Segment::open(unique_name("missing"), SegmentKind::kEvent), NotFound);
}

TEST(SegmentTest, WrongKindIsIncompatible) {
  const std::string name = unique_name("kind");
  auto seg = make(name);
  try {
    Segment::open(name, SegmentKind::kThrottle);
    FAIL();
  } catch (const IncompatibleSegment& e) {
    EXPECT_NE(std::string(e.what()).find("holds a event"), std::string::npos) << e.what();
  }
}

TEST(SegmentTest, TruncatedAtEveryHeaderFieldBoundaryIsIncompatible) {
  const auto bytes = valid_bytes();
  const std::size_t bounds[] = {0,
                                offsetof(SegmentHeader, abi_version),
                                offsetof(SegmentHeader, kind),
                                offsetof(SegmentHeader, size_bytes),
                                offsetof(SegmentHeader, id),
                                offsetof(SegmentHeader, created_realtime_ns),
                                offsetof(SegmentHeader, creator_pid),
                                offsetof(SegmentHeader, creator_uid),
                                offsetof(SegmentHeader, header_bytes),
                                offsetof(SegmentHeader, flags),
                                offsetof(SegmentHeader, reserved1),
                                sizeof(SegmentHeader),
                                kSize / 2,
                                kSize - 1};
  for (std::size_t cut : bounds) {
    const std::string name = unique_name("trunc");
    write_file(name, std::vector<char>(bytes.begin(), bytes.begin() + cut));
    EXPECT_THROW(Segment::open(name, SegmentKind::kEvent), IncompatibleSegment) << "cut at " << cut;
    const auto info = Segment::inspect(name);
    EXPECT_FALSE(info.valid) << "cut at " << cut;
    Segment::remove(name);
  }
}

TEST(SegmentTest, CorruptHeaderFieldsAreIncompatible) {
  struct Case {
    const char* what;
    void (*mutate)(SegmentHeader*);
  };
  const Case cases[] = {
      {"magic", [](SegmentHeader* h) { h->magic ^= 1; }},
      {"abi", [](SegmentHeader* h) { h->abi_version = kAbiVersion + 1; }},
      {"kind", [](SegmentHeader* h) { h->kind = 99; }},
      {"size", [](SegmentHeader* h) { h->size_bytes = kSize * 2; }},
      {"header_bytes", [](SegmentHeader* h) { h->header_bytes = 8; }},
      {"id", [](SegmentHeader* h) { h->id = 0; }},
  };
  for (const auto& c : cases) {
    auto bytes = valid_bytes();
    c.mutate(reinterpret_cast<SegmentHeader*>(bytes.data()));
    const std::string name = unique_name("corrupt");
    write_file(name, bytes);
    EXPECT_THROW(Segment::open(name, SegmentKind::kEvent), IncompatibleSegment) << c.what;
    Segment::remove(name);
  }
}

TEST(SegmentTest, SymlinkIsRefused) {
  const std::string target = unique_name("target");
  auto seg = make(target);
  const std::string link = unique_name("link");
  ASSERT_EQ(::symlink(Segment::path_for(target).c_str(), Segment::path_for(link).c_str()), 0);
  EXPECT_THROW(Segment::open(link, SegmentKind::kEvent), PermissionDenied);
  // Creating over a dangling or live symlink fails without touching its target.
  EXPECT_THROW(make(link), AlreadyExists);
  ::unlink(Segment::path_for(link).c_str());
}

TEST(SegmentTest, WorldWritableIsRefusedUnlessAllowed) {
  const std::string name = unique_name("worldw");
  write_file(name, valid_bytes(), 0666);
  EXPECT_THROW(Segment::open(name, SegmentKind::kEvent), PermissionDenied);
  EXPECT_NO_THROW(Segment::open(name, SegmentKind::kEvent, {.allow_world_writable = true}));
  Segment::remove(name);
}

TEST(SegmentTest, OtherOwnerIsRefusedUnlessAllowed) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another uid";
  const std::string name = unique_name("owner");
  write_file(name, valid_bytes());
  ASSERT_EQ(::chown(Segment::path_for(name).c_str(), 65534, 65534), 0);
  try {
    Segment::open(name, SegmentKind::kEvent);
    FAIL();
  } catch (const PermissionDenied& e) {
    EXPECT_NE(std::string(e.what()).find("uid 65534"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(Segment::open(name, SegmentKind::kEvent, {.allow_other_owner = true}));
  Segment::remove(name);
}

// A directory, a FIFO or a socket where a segment is expected: IncompatibleSegment naming it.
TEST(SegmentTest, NotARegularFileIsIncompatible) {
  const std::string dir = unique_name("dir");
  ASSERT_EQ(::mkdir(Segment::path_for(dir).c_str(), 0700), 0);
  const std::string fifo = unique_name("fifo");
  ASSERT_EQ(::mkfifo(Segment::path_for(fifo).c_str(), 0600), 0);
  const std::string sock = unique_name("sock");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = Segment::path_for(sock);
  ASSERT_LT(sock_path.size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sock_path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  for (const auto& [name, expected] :
       {std::pair{dir, "directory"}, std::pair{fifo, "regular"}, std::pair{sock, "socket"}}) {
    try {
      (void)Segment::open(name, SegmentKind::kEvent);
      ADD_FAILURE() << name << " opened as a segment";
    } catch (const IncompatibleSegment& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  ::close(fd);
  ::rmdir(Segment::path_for(dir).c_str());
  ::unlink(Segment::path_for(fifo).c_str());
  ::unlink(sock_path.c_str());
}

TEST(SegmentTest, RemovedWhileInUseKeepsWorking) {
  const std::string name = unique_name("removed");
  auto seg = make(name);
  auto other = Segment::open(name, SegmentKind::kEvent);
  Segment::remove(name);
  static_cast<char*>(seg->body())[1] = 7;
  EXPECT_EQ(static_cast<char*>(other->body())[1], 7);
  EXPECT_THROW(Segment::open(name, SegmentKind::kEvent), NotFound);
  // A new segment may take the name; the old creator's close must not remove it.
  auto fresh = make(name);
  seg.reset();
  EXPECT_NO_THROW(Segment::open(name, SegmentKind::kEvent));
}

TEST(SegmentTest, ListShowsValidAndBrokenFiles) {
  const std::string good = unique_name("lsgood");
  const std::string bad = unique_name("lsbad");
  auto seg = make(good);
  write_file(bad, {'x', 'y'});
  bool saw_good = false, saw_bad = false;
  for (const auto& info : Segment::list()) {
    if (info.name == good) {
      saw_good = true;
      EXPECT_TRUE(info.valid) << info.problem;
      EXPECT_EQ(info.id, seg->id());
      EXPECT_EQ(info.kind, SegmentKind::kEvent);
    }
    if (info.name == bad) {
      saw_bad = true;
      EXPECT_FALSE(info.valid);
    }
  }
  EXPECT_TRUE(saw_good);
  EXPECT_TRUE(saw_bad);
  Segment::remove(bad);
}

TEST(SegmentTest, AnonymousIsSharedWithForkedChildren) {
  auto seg = Segment::anonymous(SegmentKind::kEvent, kSize, nullptr);
  EXPECT_TRUE(seg->anonymous());
  pid_t pid = fork();
  if (pid == 0) {
    static_cast<char*>(seg->body())[0] = 9;
    _exit(0);
  }
  ASSERT_EQ(test::wait_child(pid), 0);
  EXPECT_EQ(static_cast<char*>(seg->body())[0], 9);
}

TEST(SegmentTest, BadSizeAndModeAreInvalidArguments) {
  EXPECT_THROW(Segment::create(unique_name("size"), SegmentKind::kEvent, 8, nullptr),
               InvalidArgument);
  EXPECT_THROW(
      Segment::create(unique_name("size"), SegmentKind::kEvent, kMaxSegmentBytes + 1, nullptr),
      InvalidArgument);
  EXPECT_THROW(
      Segment::create(unique_name("mode"), SegmentKind::kEvent, kSize, nullptr, {.mode = 0400}),
      InvalidArgument);
}

TEST(SegmentTest, ThrottleBodyIsValidatedToo) {
  // A throttle whose body was damaged after its header was written.
  const std::string name = unique_name("body");
  auto t = Throttle::create(name, 10, std::chrono::seconds(1));
  auto seg = Segment::open(name, SegmentKind::kThrottle);
  auto* ring_len = reinterpret_cast<std::uint32_t*>(static_cast<char*>(seg->body()) +
                                                    offsetof(Throttle::Shared, ring_len));
  const std::uint32_t saved = *ring_len;
  *ring_len = 5000;
  EXPECT_THROW(Throttle::open(name), IncompatibleSegment);
  *ring_len = saved;
  EXPECT_NO_THROW(Throttle::open(name));
}

}  // namespace
}  // namespace mpt

namespace mpt {
namespace {

TEST(SegmentEdgeTest, FullFilesystemIsAnErrorNotASigbus) {
  if (geteuid() != 0) GTEST_SKIP() << "skipped: mounting a small tmpfs needs root";
  char dir[] = "/tmp/mpt-full-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  if (::system((std::string("mount -t tmpfs -o size=8k tmpfs ") + dir + " 2>/dev/null").c_str()) !=
      0) {
    ::rmdir(dir);
    GTEST_SKIP() << "skipped: cannot mount tmpfs here";
  }
  // Fill it, then ask for a segment there.
  ::system((std::string("dd if=/dev/zero of=") + dir + "/fill bs=4k count=16 2>/dev/null").c_str());
  setenv("MPT_SHM_DIR", dir, 1);
  EXPECT_THROW(Throttle::create("full", 10), SegmentError);
  unsetenv("MPT_SHM_DIR");
  ::system((std::string("umount ") + dir).c_str());
  ::rmdir(dir);
}

TEST(SegmentEdgeTest, EventTooSmallIsIncompatible) {
  const std::string name = test::unique_name("smallevent");
  auto bytes = valid_bytes();
  bytes.resize(sizeof(SegmentHeader));
  reinterpret_cast<SegmentHeader*>(bytes.data())->size_bytes = bytes.size();
  write_file(name, bytes);
  EXPECT_THROW(Event::open(name), IncompatibleSegment);
  Segment::remove(name);
}

}  // namespace
}  // namespace mpt
