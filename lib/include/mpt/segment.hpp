// mpt/segment.hpp — a shared-memory region holding one mpthrottle object.
//
// Named segments live in /dev/shm/mpt.<name> (or $MPT_SHM_DIR/mpt.<name>) and can be attached by
// any process of the same user; anonymous segments (MAP_SHARED|MAP_ANONYMOUS) are shared with the
// children forked after they were made.
//
// Lifetime: a named segment is published fully initialised (it is built in an unnamed O_TMPFILE
// file and linked to its name with linkat(), which fails if the name exists, so no process can ever
// see a half-written header). The handle returned by create() unlinks the name when the creating
// process drops its last reference, unless CreateOptions::persist is set; Segment::remove() unlinks
// explicitly. Mappings stay valid in every process that holds them after the name is gone.
//
// Every segment starts with a SegmentHeader. open() checks, in this order and before mapping
// anything: no symlink (O_NOFOLLOW), a regular file, the owner and mode (see OpenOptions), a size
// large enough for the header and no larger than kMaxSegmentBytes, then magic, ABI version, kind
// and the recorded size against the file's size. A truncated or foreign file is an
// IncompatibleSegment error, never a SIGBUS.
//
// Safe for concurrent use: the handle is immutable after construction; the memory it maps is shared
// and its contents are synchronised by whoever uses it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mpt {

enum class SegmentKind : std::uint32_t {
  kThrottle = 1,
  kEvent = 2,
  kLock = 3,
  kSemaphore = 4,
  kCondition = 5,
  kQueue = 6,
  kDict = 7,
  kRecord = 8,
};

// "throttle", "event", ...; "unknown" for any other value.
const char* to_string(SegmentKind kind) noexcept;

inline constexpr std::uint64_t kSegmentMagic = 0x014c5452'4854504dULL;  // "MPTHRTL\x01"
inline constexpr std::uint32_t kAbiVersion = 4;
inline constexpr std::size_t kMaxSegmentBytes = 256u << 20;  // 256 MiB
inline constexpr std::size_t kMaxNameLength = 200;

// The first 64 bytes of every segment. Written once, before the segment is published.
struct SegmentHeader {
  std::uint64_t magic;
  std::uint32_t abi_version;
  std::uint32_t kind;  // SegmentKind
  std::uint64_t size_bytes;
  std::uint64_t id;  // random, from getrandom(); names the object in probes and reports
  std::int64_t created_realtime_ns;
  std::int32_t creator_pid;
  std::uint32_t creator_uid;
  std::uint32_t header_bytes;  // sizeof(SegmentHeader)
  std::uint32_t flags;         // kSegmentPersistent, or 0 (older segments: 0, it was reserved)
  std::uint64_t reserved1;
};
static_assert(sizeof(SegmentHeader) == 64);

// SegmentHeader::flags: made with CreateOptions::persist, to outlive its creator (`mpt create`):
// `mpt rm --stale` keeps it. A mark for tools only; nothing in the library reads it.
inline constexpr std::uint32_t kSegmentPersistent = 1;

struct CreateOptions {
  mode_t mode = 0600;    // file mode of a named segment
  bool persist = false;  // keep the name after the creating process drops its handle
};

struct OpenOptions {
  bool allow_other_owner = false;     // accept a segment owned by another uid
  bool allow_world_writable = false;  // accept a segment whose mode has o+w
};

// What `mpt ls` shows of one file in the segment directory.
struct SegmentInfo {
  std::string name;  // without the "mpt." prefix
  std::string path;
  bool valid = false;  // header validated; if false, `problem` says why
  std::string problem;
  SegmentKind kind{};
  std::uint64_t id = 0;
  std::uint64_t size_bytes = 0;
  std::int32_t creator_pid = 0;
  std::uint32_t creator_uid = 0;
  std::int64_t created_realtime_ns = 0;
  bool persistent = false;      // SegmentHeader::flags has kSegmentPersistent
  std::uint32_t owner_uid = 0;  // of the file
  std::uint32_t mode = 0;       // of the file
};

class Segment {
 public:
  using Init = std::function<void(void* data, std::size_t size_bytes)>;

  // Segment::create()
  // Creates /dev/shm/mpt.<name> with `size_bytes` in all (header included), runs `init` on the
  // zero-filled memory with the header already written, then publishes the name. Throws
  // InvalidArgument for a bad name or size, AlreadyExists if the name is taken (exactly one of
  // several racing creators wins), PermissionDenied or SystemError otherwise.
  static std::shared_ptr<Segment> create(std::string_view name, SegmentKind kind,
                                         std::size_t size_bytes, const Init& init,
                                         const CreateOptions& options = {});

  // Segment::open()
  // Attaches to an existing named segment of `kind` after validating it (see the banner). Throws
  // InvalidArgument, NotFound, PermissionDenied, IncompatibleSegment (also for a directory, FIFO
  // or socket in the file's place) or SystemError.
  static std::shared_ptr<Segment> open(std::string_view name, SegmentKind kind,
                                       const OpenOptions& options = {});

  // Segment::anonymous()
  // A MAP_SHARED|MAP_ANONYMOUS segment, shared with children forked after this call.
  static std::shared_ptr<Segment> anonymous(SegmentKind kind, std::size_t size_bytes,
                                            const Init& init);

  // Segment::remove()
  // Unlinks a named segment. Throws NotFound if absent. Attached processes keep their mapping.
  static void remove(std::string_view name);

  // Reads and validates the header of one file without mapping it. Never throws for bad content.
  // A name that validate_name() refuses (a file planted by hand, "mpt.a b" say) is never valid:
  // `problem` says why, whatever the file holds.
  static SegmentInfo inspect(std::string_view name);

  // Every "mpt.*" file in the segment directory, valid or not, sorted by name.
  static std::vector<SegmentInfo> list();

  // $MPT_SHM_DIR if set, else /dev/shm.
  static std::string directory();
  static std::string path_for(std::string_view name);
  // Throws InvalidArgument unless name is 1..kMaxNameLength characters of [A-Za-z0-9._-] and is
  // not "." or "..".
  static void validate_name(std::string_view name);

  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  void* data() const noexcept { return data_; }
  std::size_t size_bytes() const noexcept { return size_; }
  const SegmentHeader& header() const noexcept { return *static_cast<SegmentHeader*>(data_); }
  std::uint64_t id() const noexcept { return header().id; }
  const std::string& name() const noexcept { return name_; }  // empty when anonymous
  bool anonymous() const noexcept { return name_.empty(); }
  // Where the object's own data starts (after the header, 64-byte aligned).
  void* body() const noexcept { return static_cast<char*>(data_) + kBodyOffset; }
  static constexpr std::size_t kBodyOffset = 64;

 private:
  Segment(void* data, std::size_t size, std::string name, bool unlink_on_close);
  void* data_;
  std::size_t size_;
  std::string name_;
  bool unlink_on_close_;
  pid_t owner_pid_;
};

}  // namespace mpt
