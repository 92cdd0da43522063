// lib/src/safe_file.cpp — see safe_file.hpp.
#include "safe_file.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "mpt/error.hpp"

namespace mpt::detail {

namespace {

constexpr int kNameAttempts = 100;           // random names tried before giving up
constexpr std::size_t kMaxBaseInName = 200;  // of the target's name, in the temporary name

class Fd {
 public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }
  void adopt(int fd) noexcept {
    reset();
    fd_ = fd;
  }
  // Closes now; returns close()'s errno, or 0.
  int reset() noexcept {
    int e = 0;
    if (fd_ >= 0 && ::close(fd_) != 0) e = errno;
    fd_ = -1;
    return e;
  }

 private:
  int fd_;
};

const char* file_type(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

// 12 characters of [A-Za-z0-9_-] from getrandom(): 72 bits nobody can guess.
std::string random_suffix() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
  unsigned char bytes[12];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      throw SystemError(std::string("getrandom: ") + std::strerror(e), e);
    }
    got += static_cast<std::size_t>(n);
  }
  std::string s;
  for (unsigned char b : bytes)
    s += kAlphabet[b & 63];
  return s;
}

bool write_all(int fd, std::string_view bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    off += static_cast<std::size_t>(w);
  }
  return true;
}

// The target `name` in the directory `dfd` (or AT_FDCWD): absent or a regular file. Never a
// symlink, a device, a FIFO or a directory. Returns the existing file's permission bits, or -1.
int check_target(int dfd, const char* name, const std::string& shown) {
  const auto refuse = [&](const std::string& why, int e) {
    throw SystemError("cannot write " + shown + ": " + why, e);
  };
  struct stat st;
  if (::fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) {
      refuse("it is a symbolic link; refusing to replace it or write through it", ELOOP);
    }
    if (!S_ISREG(st.st_mode)) {
      refuse(std::string("it is ") + file_type(st.st_mode) + ", not a regular file; refusing to " +
                 "replace it",
             EINVAL);
    }
    return static_cast<int>(st.st_mode & 07777);
  } else if (errno != ENOENT) {
    const int e = errno;
    refuse(std::strerror(e), e);
  }
  return -1;
}

}  // namespace

void check_replaceable(const std::filesystem::path& path) {
  check_target(AT_FDCWD, path.c_str(), path.string());
}

void write_file_atomically(const std::filesystem::path& path, std::string_view bytes,
                           const AtomicWriteOptions& options) {
  const std::string shown = path.string();
  auto fail = [&](const std::string& why, int e) -> void {
    throw SystemError("cannot write " + shown + ": " + why, e);
  };
  const std::string name = path.filename().string();
  if (name.empty() || name == "." || name == "..") fail("it names a directory", EISDIR);
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";

  if (options.create_parents) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) fail("cannot create the directory " + dir.string() + ": " + ec.message(), ec.value());
  }
  // Everything below is relative to this descriptor: the directory cannot be swapped under us.
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() < 0) {
    const int e = errno;
    fail("cannot open the directory " + dir.string() + ": " + std::strerror(e), e);
  }

  // A file that exists keeps its permission bits (a page made 0600 stays 0600).
  const int old_mode = check_target(dfd.get(), name.c_str(), shown);
  const mode_t mode = old_mode >= 0 ? static_cast<mode_t>(old_mode) : options.mode;

  // A new file under a name no one can predict; O_EXCL|O_NOFOLLOW: a planted name fails.
  const std::string base = name.substr(0, kMaxBaseInName);
  std::string temp;
  Fd fd;
  for (int attempt = 0; attempt < kNameAttempts && fd.get() < 0; ++attempt) {
    temp = "." + base + "." + random_suffix();
    fd.adopt(::openat(dfd.get(), temp.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
    if (fd.get() < 0 && errno != EEXIST) {
      const int e = errno;
      fail("cannot create a temporary file in " + dir.string() + ": " + std::strerror(e), e);
    }
  }
  if (fd.get() < 0) fail("no free temporary name in " + dir.string(), EEXIST);
  const std::filesystem::path temp_path = dir / temp;
  auto fail_and_remove = [&](const std::string& what, int e) {
    fd.reset();
    ::unlinkat(dfd.get(), temp.c_str(), 0);
    fail(what + ": " + std::strerror(e), e);
  };

  if (!write_all(fd.get(), bytes)) fail_and_remove("write", errno);
  if (::fchmod(fd.get(), mode) != 0) fail_and_remove("fchmod", errno);
  if (::fsync(fd.get()) != 0) fail_and_remove("fsync", errno);
  if (const int e = fd.reset(); e != 0) fail_and_remove("close", e);
  if (options.before_rename) {
    try {
      options.before_rename(temp_path);
    } catch (...) {
      ::unlinkat(dfd.get(), temp.c_str(), 0);
      throw;
    }
  }
  if (::renameat(dfd.get(), temp.c_str(), dfd.get(), name.c_str()) != 0) {
    fail_and_remove("rename", errno);
  }
  ::fsync(dfd.get());  // the rename itself; a failure here cannot be undone and loses nothing old
}

std::string read_file_capped(const std::filesystem::path& path, std::size_t max_bytes,
                             std::string_view what) {
  const std::string shown = what.empty() ? path.string() : std::string(what) + " " + path.string();
  // O_NONBLOCK: opening a FIFO with no writer must not block; cleared below for the reads.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    const int e = errno;
    if (e == ENOENT) throw NotFound("cannot read " + shown + ": it does not exist", e);
    throw SystemError("cannot read " + shown + ": " + std::strerror(e), e);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    const int e = errno;
    throw SystemError("cannot read " + shown + ": " + std::strerror(e), e);
  }
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
    throw SystemError(
        "cannot read " + shown + ": it is " + file_type(st.st_mode) + ", not a regular file",
        EINVAL);
  }
  const std::string too_large =
      shown + " is larger than " + std::to_string(max_bytes) + " bytes; refusing to read it";
  if (S_ISREG(st.st_mode) && static_cast<std::uintmax_t>(st.st_size) > max_bytes) {
    throw SystemError(too_large, EFBIG);
  }
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);

  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      throw SystemError("cannot read " + shown + ": " + std::strerror(e), e);
    }
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > max_bytes) throw SystemError(too_large, EFBIG);
    text.append(buf, static_cast<std::size_t>(n));
  }
  return text;
}

}  // namespace mpt::detail
