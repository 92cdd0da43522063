#include "mpt/segment.hpp"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "clock.hpp"
#include "mpt/error.hpp"

namespace mpt {

namespace {

constexpr std::string_view kPrefix = "mpt.";

std::string errno_text(int e) {
  return std::strerror(e);
}

std::uint64_t random_id() {
  std::uint64_t id = 0;
  while (id == 0) {
    if (getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id)) {
      // getrandom cannot fail for 8 bytes once the pool is ready; fall back to the clock.
      id = static_cast<std::uint64_t>(detail::mono_ns()) * 0x9E3779B97F4A7C15ULL ^ getpid();
    }
  }
  return id;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void write_header(void* data, SegmentKind kind, std::size_t size, std::uint32_t flags = 0) {
  auto* h = static_cast<SegmentHeader*>(data);
  h->magic = kSegmentMagic;
  h->abi_version = kAbiVersion;
  h->kind = static_cast<std::uint32_t>(kind);
  h->size_bytes = size;
  h->id = random_id();
  h->created_realtime_ns = detail::realtime_ns();
  h->creator_pid = getpid();
  h->creator_uid = geteuid();
  h->header_bytes = sizeof(SegmentHeader);
  h->flags = flags;
}

void check_size(std::size_t size) {
  if (size < Segment::kBodyOffset || size > kMaxSegmentBytes) {
    throw InvalidArgument("segment size " + std::to_string(size) + " bytes is out of range (" +
                          std::to_string(Segment::kBodyOffset) + ".." +
                          std::to_string(kMaxSegmentBytes) + ")");
  }
}

// Validates a header read from a file of `file_size` bytes; returns "" or the problem.
std::string header_problem(const SegmentHeader& h, std::size_t file_size) {
  if (h.magic != kSegmentMagic) return "not an mpthrottle segment (bad magic)";
  if (h.abi_version != kAbiVersion) {
    return "ABI version " + std::to_string(h.abi_version) + ", this library speaks " +
           std::to_string(kAbiVersion);
  }
  if (h.header_bytes != sizeof(SegmentHeader)) return "header size mismatch";
  if (h.size_bytes != file_size) {
    return "header records " + std::to_string(h.size_bytes) + " bytes but the file has " +
           std::to_string(file_size) + " (truncated or corrupt)";
  }
  if (h.id == 0) return "corrupt header (zero id)";
  return "";
}

SegmentInfo inspect_file(std::string_view name);  // below Segment::inspect

}  // namespace

const char* to_string(SegmentKind kind) noexcept {
  switch (kind) {
    case SegmentKind::kThrottle:
      return "throttle";
    case SegmentKind::kEvent:
      return "event";
    case SegmentKind::kLock:
      return "lock";
    case SegmentKind::kSemaphore:
      return "semaphore";
    case SegmentKind::kCondition:
      return "condition";
    case SegmentKind::kQueue:
      return "queue";
    case SegmentKind::kDict:
      return "dict";
    case SegmentKind::kRecord:
      return "record";
  }
  return "unknown";
}

std::string Segment::directory() {
  const char* d = std::getenv("MPT_SHM_DIR");
  return (d && *d) ? std::string(d) : std::string("/dev/shm");
}

void Segment::validate_name(std::string_view name) {
  if (name.empty()) throw InvalidArgument("segment name is empty");
  if (name.size() > kMaxNameLength) {
    throw InvalidArgument("segment name is " + std::to_string(name.size()) +
                          " characters long; the limit is " + std::to_string(kMaxNameLength));
  }
  if (name == "." || name == "..")
    throw InvalidArgument("segment name '" + std::string(name) + "' is reserved");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      std::string shown = (c == '/') ? "'/'"
                          : (c >= 0x20 && c < 0x7f)
                              ? std::string("'") + c + "'"
                              : "byte " + std::to_string(static_cast<unsigned char>(c));
      throw InvalidArgument("segment name '" + std::string(name) + "' contains " + shown +
                            "; allowed are letters, digits, '.', '_' and '-'");
    }
  }
}

std::string Segment::path_for(std::string_view name) {
  validate_name(name);
  return directory() + "/" + std::string(kPrefix) + std::string(name);
}

Segment::Segment(void* data, std::size_t size, std::string name, bool unlink_on_close)
    : data_(data),
      size_(size),
      name_(std::move(name)),
      unlink_on_close_(unlink_on_close),
      owner_pid_(getpid()) {}

Segment::~Segment() {
  // Only the creating process unlinks, and only the file that is still ours: a forked child that
  // drops its copy, or a name re-created by someone else after ours was removed, is left alone.
  if (unlink_on_close_ && getpid() == owner_pid_) {
    const std::string path = directory() + "/" + std::string(kPrefix) + name_;
    Fd f{::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
    SegmentHeader h{};
    if (f.fd >= 0 && ::pread(f.fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h) &&
        h.magic == kSegmentMagic && h.id == header().id) {
      ::unlink(path.c_str());
    }
  }
  ::munmap(data_, size_);
}

std::shared_ptr<Segment> Segment::create(std::string_view name, SegmentKind kind,
                                         std::size_t size_bytes, const Init& init,
                                         const CreateOptions& options) {
  const std::string path = path_for(name);
  check_size(size_bytes);
  if ((options.mode & ~0777u) != 0 || (options.mode & 0600) != 0600) {
    throw InvalidArgument("segment mode " + std::to_string(options.mode) +
                          " must include owner read and write (0600) and no special bits");
  }
  const std::string dir = directory();
  const std::string what = "segment '" + std::string(name) + "' (" + path + ")";

  // Build the object in an unnamed file, then give it its name in one atomic step.
  Fd f{::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, options.mode)};
  if (f.fd < 0) {
    const int e = errno;
    if (e == EACCES || e == EPERM)
      throw PermissionDenied("cannot create " + what + ": " + errno_text(e), e);
    if (e == ENOENT)
      throw NotFound("cannot create " + what + ": directory " + dir + " does not exist", e);
    throw SystemError("cannot create " + what + ": " + errno_text(e), e);
  }
  ::fchmod(f.fd, options.mode);  // O_TMPFILE applies the umask; the caller asked for this mode
  if (::ftruncate(f.fd, static_cast<off_t>(size_bytes)) != 0) {
    const int e = errno;
    throw SystemError(
        "cannot size " + what + " to " + std::to_string(size_bytes) + " bytes: " + errno_text(e),
        e);
  }
  // Allocate the pages now: on a full tmpfs the first store into a sparse mapping is a SIGBUS.
  if (int e = ::posix_fallocate(f.fd, 0, static_cast<off_t>(size_bytes)); e != 0) {
    throw SystemError("cannot allocate " + std::to_string(size_bytes) + " bytes for " + what +
                          ": " + errno_text(e),
                      e);
  }
  void* p = ::mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, f.fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    throw SystemError("cannot map " + what + ": " + errno_text(e), e);
  }
  std::shared_ptr<Segment> seg(new Segment(p, size_bytes, std::string(name), false));
  write_header(p, kind, size_bytes, options.persist ? kSegmentPersistent : 0);
  if (init) init(p, size_bytes);
  // msync is not needed for tmpfs: the pages are the file.
  const std::string proc = "/proc/self/fd/" + std::to_string(f.fd);
  if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) != 0) {
    const int e = errno;
    if (e == EEXIST) throw AlreadyExists(what + " already exists", e);
    if (e == EACCES || e == EPERM)
      throw PermissionDenied("cannot create " + what + ": " + errno_text(e), e);
    throw SystemError("cannot publish " + what + ": " + errno_text(e), e);
  }
  seg->unlink_on_close_ = !options.persist;
  return seg;
}

std::shared_ptr<Segment> Segment::open(std::string_view name, SegmentKind kind,
                                       const OpenOptions& options) {
  const std::string path = path_for(name);
  const std::string what = "segment '" + std::string(name) + "' (" + path + ")";
  Fd f{::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)};
  if (f.fd < 0) {
    const int e = errno;
    if (e == ENOENT) throw NotFound(what + " does not exist", e);
    if (e == ELOOP) throw PermissionDenied(what + " is a symbolic link; refusing to follow it", e);
    if (e == EACCES || e == EPERM)
      throw PermissionDenied("cannot open " + what + ": " + errno_text(e), e);
    // Not a file that could hold a segment (open(2) refuses these before fstat could tell).
    if (e == EISDIR) throw IncompatibleSegment(what + " is a directory, not a regular file");
    if (e == ENXIO) throw IncompatibleSegment(what + " is a socket or device, not a regular file");
    throw SystemError("cannot open " + what + ": " + errno_text(e), e);
  }
  struct stat st;
  if (::fstat(f.fd, &st) != 0) {
    const int e = errno;
    throw SystemError("cannot stat " + what + ": " + errno_text(e), e);
  }
  if (!S_ISREG(st.st_mode)) throw IncompatibleSegment(what + " is not a regular file");
  if (st.st_uid != geteuid() && !options.allow_other_owner) {
    throw PermissionDenied(what + " is owned by uid " + std::to_string(st.st_uid) +
                           ", not by uid " + std::to_string(geteuid()) +
                           " (OpenOptions::allow_other_owner accepts it)");
  }
  if ((st.st_mode & S_IWOTH) && !options.allow_world_writable) {
    throw PermissionDenied(
        what + " is writable by every user (OpenOptions::allow_world_writable accepts it)");
  }
  const auto file_size = static_cast<std::size_t>(st.st_size);
  if (file_size < sizeof(SegmentHeader)) {
    throw IncompatibleSegment(what + " is truncated: " + std::to_string(file_size) +
                              " bytes, shorter than the " + std::to_string(sizeof(SegmentHeader)) +
                              "-byte header");
  }
  if (file_size > kMaxSegmentBytes) {
    throw IncompatibleSegment(what + " is " + std::to_string(file_size) + " bytes, over the " +
                              std::to_string(kMaxSegmentBytes) + "-byte limit");
  }
  SegmentHeader h{};
  if (::pread(f.fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) {
    throw IncompatibleSegment(what + " could not be read in full");
  }
  if (auto problem = header_problem(h, file_size); !problem.empty()) {
    throw IncompatibleSegment(what + ": " + problem);
  }
  if (h.kind != static_cast<std::uint32_t>(kind)) {
    throw IncompatibleSegment(what + " holds a " + to_string(static_cast<SegmentKind>(h.kind)) +
                              ", not a " + to_string(kind));
  }
  void* p = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_SHARED, f.fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    throw SystemError("cannot map " + what + ": " + errno_text(e), e);
  }
  return std::shared_ptr<Segment>(new Segment(p, file_size, std::string(name), false));
}

std::shared_ptr<Segment> Segment::anonymous(SegmentKind kind, std::size_t size_bytes,
                                            const Init& init) {
  check_size(size_bytes);
  void* p = ::mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    throw SystemError("cannot map an anonymous " + std::string(to_string(kind)) + " segment of " +
                          std::to_string(size_bytes) + " bytes: " + errno_text(e),
                      e);
  }
  std::shared_ptr<Segment> seg(new Segment(p, size_bytes, std::string(), false));
  write_header(p, kind, size_bytes);
  if (init) init(p, size_bytes);
  return seg;
}

void Segment::remove(std::string_view name) {
  const std::string path = path_for(name);
  if (::unlink(path.c_str()) != 0) {
    const int e = errno;
    const std::string what = "segment '" + std::string(name) + "' (" + path + ")";
    if (e == ENOENT) throw NotFound(what + " does not exist", e);
    if (e == EACCES || e == EPERM)
      throw PermissionDenied("cannot remove " + what + ": " + errno_text(e), e);
    throw SystemError("cannot remove " + what + ": " + errno_text(e), e);
  }
}

SegmentInfo Segment::inspect(std::string_view name) {
  std::string bad_name;
  try {
    validate_name(name);
  } catch (const InvalidArgument& e) {
    bad_name = e.what();
  }
  if (bad_name.empty()) return inspect_file(name);
  // A name no one could have made through this library (another user's plant, say): listed with
  // the reason, never valid. One with a '/' would be another file: not even looked at.
  SegmentInfo info;
  if (name.empty() || name.find('/') != std::string_view::npos) {
    info.name = std::string(name);
  } else {
    info = inspect_file(name);
  }
  info.valid = false;
  info.problem = bad_name;
  return info;
}

namespace {

SegmentInfo inspect_file(std::string_view name) {
  SegmentInfo info;
  info.name = std::string(name);
  info.path = Segment::directory() + "/" + std::string(kPrefix) + std::string(name);
  Fd f{::open(info.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)};
  if (f.fd < 0) {
    info.problem = errno == ELOOP ? "symbolic link" : errno_text(errno);
    return info;
  }
  struct stat st;
  if (::fstat(f.fd, &st) != 0) {
    info.problem = errno_text(errno);
    return info;
  }
  info.owner_uid = st.st_uid;
  info.mode = st.st_mode & 07777;
  if (!S_ISREG(st.st_mode)) {
    info.problem = "not a regular file";
    return info;
  }
  const auto file_size = static_cast<std::size_t>(st.st_size);
  info.size_bytes = file_size;
  SegmentHeader h{};
  if (file_size < sizeof h || ::pread(f.fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) {
    info.problem = "truncated (" + std::to_string(file_size) + " bytes)";
    return info;
  }
  info.problem = header_problem(h, file_size);
  info.kind = static_cast<SegmentKind>(h.kind);
  info.id = h.id;
  info.creator_pid = h.creator_pid;
  info.creator_uid = h.creator_uid;
  info.created_realtime_ns = h.created_realtime_ns;
  info.persistent = (h.flags & kSegmentPersistent) != 0;
  info.valid = info.problem.empty();
  return info;
}

}  // namespace

std::vector<SegmentInfo> Segment::list() {
  std::vector<SegmentInfo> out;
  const std::string dir = directory();
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    const int e = errno;
    throw SystemError("cannot list " + dir + ": " + errno_text(e), e);
  }
  while (dirent* ent = ::readdir(d)) {
    std::string_view n(ent->d_name);
    if (n.size() <= kPrefix.size() || n.substr(0, kPrefix.size()) != kPrefix) continue;
    out.push_back(inspect(n.substr(kPrefix.size())));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return out;
}

}  // namespace mpt
