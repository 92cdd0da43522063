#include "emissions.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dlfcn.h>
#include <errno.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "emissions.skel.h"
#include "mpt/error.hpp"

namespace mpt::probe {

namespace {

bool has_cap(const __user_cap_data_struct (&data)[2], int cap) {
  return data[cap / 32].effective & (1u << (cap % 32));
}

}  // namespace

std::string default_library_path() {
  Dl_info info{};
  // A function of libmpthrottle: dladdr tells which file its code (and so its probes) came from.
  auto fn = static_cast<const char* (*)(mpt::ErrorCode) noexcept>(&mpt::to_string);
  void* addr = reinterpret_cast<void*>(fn);
  if (dladdr(addr, &info) && info.dli_fname && info.dli_fname[0]) {
    char resolved[4096];
    if (realpath(info.dli_fname, resolved)) return resolved;
    return info.dli_fname;
  }
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) return std::string(exe, static_cast<std::size_t>(n));
  return "";
}

std::string missing_privileges() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0)
    return std::string("cannot read capabilities: ") + std::strerror(errno);
  if (has_cap(data, CAP_SYS_ADMIN)) return "";
  constexpr int kCapPerfmon = 38;
  constexpr int kCapBpf = 39;
  std::string missing;
  if (!has_cap(data, kCapBpf)) missing += "CAP_BPF";
  if (!has_cap(data, kCapPerfmon))
    missing += std::string(missing.empty() ? "" : " and ") + "CAP_PERFMON";
  if (missing.empty()) return "";
  return "loading the eBPF counter needs " + missing +
         " (or CAP_SYS_ADMIN): run as root, or grant them, e.g. setcap cap_bpf,cap_perfmon+ep on "
         "the binary";
}

EmissionCounter::EmissionCounter(const Target& target) {
  const std::string path = target.path.empty() ? default_library_path() : target.path;
  auto fail = [&](const std::string& step, int err) {
    for (auto* l : links_)
      bpf_link__destroy(l);
    links_.clear();
    emissions__destroy(skel_);
    skel_ = nullptr;
    throw std::runtime_error(
        "eBPF counter: " + step + " for " + path +
        (target.pid > 0 ? " pid " + std::to_string(target.pid) : std::string()) + ": " +
        std::strerror(err < 0 ? -err : err));
  };
  skel_ = emissions__open();
  if (!skel_) fail("open", errno);
  skel_->rodata->filter_tgid = target.pid > 0 ? static_cast<__u32>(target.pid) : 0;
  skel_->rodata->filter_throttle_id = target.throttle_id;
  if (int err = emissions__load(skel_)) fail("load", err);
  struct {
    bpf_program* prog;
    const char* name;
  } probes[] = {{skel_->progs.on_emit, "emit"}, {skel_->progs.on_fuel, "fuel"}};
  for (auto& p : probes) {
    bpf_link* link = bpf_program__attach_usdt(p.prog, target.pid > 0 ? target.pid : -1,
                                              path.c_str(), "mpthrottle", p.name, nullptr);
    if (!link) fail(std::string("attach to mpthrottle:") + p.name, errno);
    links_.push_back(link);
  }
}

EmissionCounter::~EmissionCounter() {
  for (auto* l : links_)
    bpf_link__destroy(l);
  emissions__destroy(skel_);
}

std::vector<Entry> EmissionCounter::read() const {
  std::vector<Entry> out;
  const int fd = bpf_map__fd(skel_->maps.stats);
  mpt_key key{}, next{};
  const mpt_key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    Entry e;
    if (bpf_map_lookup_elem(fd, &next, &e.stats) == 0) {
      e.throttle_id = next.throttle_id;
      e.tgid = next.tgid;
      e.kind = next.kind;
      out.push_back(e);
    }
    key = next;
    prev = &key;
  }
  return out;
}

std::uint64_t EmissionCounter::dropped() const {
  const int fd = bpf_map__fd(skel_->maps.dropped);
  __u32 k = 0;
  __u64 v = 0;
  bpf_map_lookup_elem(fd, &k, &v);
  return v;
}

}  // namespace mpt::probe
