// bpf/emissions.hpp — the user side of the eBPF counter: loads emissions.bpf.c, attaches it to the
// USDT probes mpthrottle:emit and mpthrottle:fuel, and reads what the kernel counted.
//
// EmissionCounter is RAII: the constructor loads and attaches (or throws, destroying whatever was
// made), the destructor detaches and unloads on every path. Needs CAP_BPF + CAP_PERFMON (or
// CAP_SYS_ADMIN); check missing_privileges() first for a message that says which.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "emissions.h"

struct emissions;  // the bpftool skeleton
struct bpf_link;

namespace mpt::probe {

struct Target {
  pid_t pid = -1;    // -1: every process that maps `path`
  std::string path;  // the shared library or the statically linked binary holding the probes
  std::uint64_t throttle_id = 0;  // 0: every throttle; else only this one (filtered in the kernel)
};

// The file that holds this process's copy of libmpthrottle (the shared library when linked
// against it, the executable when linked statically).
std::string default_library_path();

// "" when this process may load and attach BPF programs; otherwise what is missing, in words.
std::string missing_privileges();

struct Entry {
  std::uint64_t throttle_id = 0;
  std::uint32_t tgid = 0;
  std::uint32_t kind = 0;  // MPT_KIND_EMIT or MPT_KIND_FUEL
  mpt_stats stats{};
};

class EmissionCounter {
 public:
  // Loads the program (filtered to target.pid when > 0 and to target.throttle_id when not 0) and
  // attaches both probes. Throws
  // std::runtime_error naming the step and the target when anything fails.
  explicit EmissionCounter(const Target& target);
  ~EmissionCounter();
  EmissionCounter(const EmissionCounter&) = delete;
  EmissionCounter& operator=(const EmissionCounter&) = delete;

  // Everything counted so far, one entry per (throttle id, tgid, kind). Never blocks.
  std::vector<Entry> read() const;
  // Events the kernel could not record because the map was full.
  std::uint64_t dropped() const;

 private:
  emissions* skel_ = nullptr;
  std::vector<::bpf_link*> links_;
};

}  // namespace mpt::probe
