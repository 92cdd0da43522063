// libFuzzer: any bytes as a segment file. Segment::inspect, Throttle::open and Event::open must
// give a clear error or a usable object: never a crash, a SIGBUS or undefined behaviour (this
// target is built with ASan + UBSan). An opened throttle is read (snapshot, available, has_fuel),
// as a process attaching to a corrupt segment would.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <string>

#include "mpt/event.hpp"
#include "mpt/segment.hpp"
#include "mpt/throttle.hpp"

namespace {

const std::string& directory() {
  static const std::string dir = [] {
    std::string d = "/dev/shm/mpt-fuzz-" + std::to_string(getpid());
    mkdir(d.c_str(), 0700);
    setenv("MPT_SHM_DIR", d.c_str(), 1);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = directory() + "/mpt.fuzz";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
  if (fd < 0) std::abort();
  std::size_t off = 0;
  while (off < size) {
    const ssize_t w = ::write(fd, data + off, size - off);
    if (w <= 0) std::abort();
    off += static_cast<std::size_t>(w);
  }
  ::close(fd);

  (void)mpt::Segment::inspect("fuzz");
  try {
    mpt::Throttle t = mpt::Throttle::open("fuzz");
    (void)t.snapshot();
    (void)t.available();
    (void)t.has_fuel(1);
    (void)t.interval();
  } catch (const std::exception&) {
  }
  try {
    mpt::Event e = mpt::Event::open("fuzz");
    (void)e.is_set();
  } catch (const std::exception&) {
  }
  return 0;
}
