// How mpthrottle writes and reads the files a user names (lib/src/sys/safe_file.hpp): never through
// a planted name, never over what is not a regular file, never past a cap.
#include "safe_file.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "../test_util.hpp"
#include "mpt/error.hpp"

namespace mpt::detail {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::size_t entries(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir))
    ++n;
  return n;
}

// A private directory, sticky and world-writable like /tmp, and a "victim": a file of ours that
// another user would like us to overwrite.
class SafeFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / test::unique_name("safe-file");
    fs::create_directories(dir_);
    ::chmod(dir_.c_str(), 01777);
    victim_ = dir_ / "victim";
    std::ofstream(victim_) << "precious\n";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // Throws SystemError with `e` and leaves the directory as it was.
  void expect_refused(const fs::path& target, int e) {
    const std::size_t before = entries(dir_);
    try {
      write_file_atomically(target, "new\n");
      ADD_FAILURE() << target << " was written";
    } catch (const SystemError& err) {
      EXPECT_EQ(err.sys_errno(), e) << err.what();
      EXPECT_NE(std::string(err.what()).find(target.string()), std::string::npos) << err.what();
    }
    EXPECT_THROW(check_replaceable(target), SystemError);
    EXPECT_EQ(entries(dir_), before) << "no temporary file left behind";
    EXPECT_EQ(slurp(victim_), "precious\n");
  }
  fs::path dir_;
  fs::path victim_;
};

TEST_F(SafeFileTest, WritesANewFileAndReplacesAnOldOne) {
  const fs::path target = dir_ / "page.html";
  write_file_atomically(target, "one\n");
  EXPECT_EQ(slurp(target), "one\n");
  EXPECT_EQ(fs::status(target).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
  // A file that is replaced keeps its own permission bits, whatever the default for new ones.
  fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write);
  write_file_atomically(target, "two\n");
  EXPECT_EQ(slurp(target), "two\n");
  EXPECT_EQ(fs::status(target).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  AtomicWriteOptions o;
  o.mode = 0600;
  const fs::path secret = dir_ / "secret.json";
  write_file_atomically(secret, "three\n", o);
  EXPECT_EQ(fs::status(secret).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  fs::remove(secret);
  EXPECT_EQ(entries(dir_), 2u) << "the victim and the page, nothing else";
  EXPECT_NO_THROW(check_replaceable(target));
  EXPECT_NO_THROW(check_replaceable(dir_ / "absent"));
}

// The old report wrote the predictable OUT.tmp through an ofstream: a planted symlink there made
// it overwrite the link's target. The temporary name is now random and opened O_EXCL|O_NOFOLLOW.
TEST_F(SafeFileTest, APlantedTemporaryNameIsNeverFollowed) {
  const fs::path target = dir_ / "page.html";
  for (const char* planted : {"page.html.tmp", ".page.html.tmp", "page.html~", ".page.html"}) {
    fs::create_symlink(victim_, dir_ / planted);
  }
  write_file_atomically(target, "page\n");
  EXPECT_EQ(slurp(target), "page\n");
  EXPECT_EQ(slurp(victim_), "precious\n");
  EXPECT_TRUE(fs::is_symlink(dir_ / "page.html.tmp"));
  EXPECT_EQ(entries(dir_), 6u);
}

TEST_F(SafeFileTest, ASymlinkAsTheTargetIsRefused) {
  const fs::path link = dir_ / "page.html";
  fs::create_symlink(victim_, link);
  expect_refused(link, ELOOP);
  EXPECT_TRUE(fs::is_symlink(link));
  // A dangling one too: writing would create the file it names.
  const fs::path dangling = dir_ / "dangling.html";
  fs::create_symlink(dir_ / "elsewhere", dangling);
  expect_refused(dangling, ELOOP);
  EXPECT_FALSE(fs::exists(dir_ / "elsewhere"));
}

TEST_F(SafeFileTest, WhatIsNotARegularFileIsRefusedAndLeftAlone) {
  const fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_refused(fifo, EINVAL);
  EXPECT_TRUE(fs::is_fifo(fifo));
  const fs::path sub = dir_ / "sub";
  fs::create_directories(sub);
  expect_refused(sub, EINVAL);
  expect_refused(sub.string() + "/", EISDIR);
  EXPECT_TRUE(fs::is_directory(sub));
  // A device node (as root: a /dev/null of our own, so a failure cannot hurt the host).
  const fs::path dev = dir_ / "null";
  if (::mknod(dev.c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0) {
    expect_refused(dev, EINVAL);
    EXPECT_TRUE(fs::is_character_file(dev));
  }
  // A directory that does not exist: an error, not a crash.
  EXPECT_THROW(write_file_atomically(dir_ / "none" / "x", "x"), SystemError);
}

TEST_F(SafeFileTest, AFailureBeforeTheRenameLeavesTheOldFile) {
  const fs::path target = dir_ / "cal.json";
  write_file_atomically(target, "old\n");
  AtomicWriteOptions o;
  fs::path temp_seen;
  o.before_rename = [&](const fs::path& temp) {
    temp_seen = temp;
    EXPECT_EQ(slurp(temp), "new\n");
    EXPECT_EQ(temp.parent_path(), dir_);
    EXPECT_EQ(temp.filename().string().rfind(".cal.json.", 0), 0u) << temp;
    throw std::runtime_error("injected");
  };
  EXPECT_THROW(write_file_atomically(target, "new\n", o), std::runtime_error);
  EXPECT_EQ(slurp(target), "old\n");
  EXPECT_FALSE(temp_seen.empty());
  EXPECT_FALSE(fs::exists(temp_seen));
  EXPECT_EQ(entries(dir_), 2u);
  // A very long name still gets a temporary name that fits.
  const fs::path longest = dir_ / std::string(255, 'n');
  write_file_atomically(longest, "long\n");
  EXPECT_EQ(slurp(longest), "long\n");
}

TEST_F(SafeFileTest, ReadsAreCappedAndOnlyRegularFilesAndPipesAreRead) {
  const fs::path f = dir_ / "f";
  std::ofstream(f) << std::string(1000, 'x');
  EXPECT_EQ(read_file_capped(f, 1000).size(), 1000u);
  try {
    (void)read_file_capped(f, 999, "report");
    ADD_FAILURE() << "read past the cap";
  } catch (const SystemError& e) {
    EXPECT_EQ(e.sys_errno(), EFBIG);
    EXPECT_NE(std::string(e.what()).find("report " + f.string() + " is larger than 999 bytes"),
              std::string::npos)
        << e.what();
  }
  // /dev/zero never ends: refused before the first byte, as any device is.
  try {
    (void)read_file_capped("/dev/zero", 1 << 20);
    ADD_FAILURE() << "read /dev/zero";
  } catch (const SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)read_file_capped(dir_, 1 << 20), SystemError);
  EXPECT_THROW((void)read_file_capped(dir_ / "absent", 1 << 20), NotFound);
  // A FIFO with no writer reads as empty instead of blocking.
  const fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(read_file_capped(fifo, 10), "");
  // A pipe that goes on is cut at the cap.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t writer = ::fork();
  if (writer == 0) {
    ::close(fds[0]);
    const std::string chunk(4096, 'z');
    for (;;) {
      if (::write(fds[1], chunk.data(), chunk.size()) < 0) ::_exit(0);
    }
  }
  ::close(fds[1]);
  const std::string via = "/proc/self/fd/" + std::to_string(fds[0]);
  EXPECT_THROW((void)read_file_capped(via, 100'000), SystemError);
  ::close(fds[0]);
  EXPECT_GE(test::wait_child(writer, std::chrono::seconds(5)), 0);
}

}  // namespace
}  // namespace mpt::detail
