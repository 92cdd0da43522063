#include "witness.hpp"

#include <algorithm>
#include <set>
#include <stdexcept>

#include "mpt/calibration.hpp"

#ifdef MPT_HAVE_BPF
#include "emissions.hpp"
#endif

namespace mpt::trial {

#ifdef MPT_HAVE_BPF
struct KernelWitness::Counter {
  probe::EmissionCounter counter;
};
#else
struct KernelWitness::Counter {};
#endif

std::optional<double> KernelCount::achieved_rate_per_sec() const noexcept {
  if (!counted) return std::nullopt;
  return calibration::achieved_rate_per_sec(total, static_cast<std::int64_t>(first_ns),
                                            static_cast<std::int64_t>(last_ns));
}

KernelWitness::KernelWitness(const std::string& mode, const std::string& flag) {
  if (mode == "off") {
    why_not_ = "--probe off";
    return;
  }
#ifdef MPT_HAVE_BPF
  const std::string missing = probe::missing_privileges();
  if (!missing.empty()) {
    if (mode == "on") throw std::runtime_error(flag + ": " + missing);
    why_not_ = missing;
    return;
  }
  try {
    counter_.reset(
        new Counter{probe::EmissionCounter(probe::Target{-1, probe::default_library_path()})});
  } catch (const std::exception& e) {
    if (mode == "on") throw std::runtime_error(flag + ": " + e.what());
    why_not_ = e.what();
  }
#else
  if (mode == "on") throw std::runtime_error(flag + ": built without eBPF");
  why_not_ = "built without eBPF";
#endif
}

KernelWitness::~KernelWitness() = default;

bool KernelWitness::counting() const noexcept {
  return counter_ != nullptr;
}

KernelCount KernelWitness::count(std::uint64_t throttle_id) const {
  KernelCount k;
  k.why_not = why_not_;
#ifdef MPT_HAVE_BPF
  if (!counter_) return k;
  k.counted = true;
  std::uint64_t first = UINT64_MAX;
  std::set<std::uint32_t> tgids;
  for (const auto& e : counter_->counter.read()) {
    if (e.throttle_id != throttle_id || e.kind != MPT_KIND_EMIT || e.stats.count == 0) continue;
    k.total += e.stats.count;
    first = std::min<std::uint64_t>(first, e.stats.first_ns);
    k.last_ns = std::max<std::uint64_t>(k.last_ns, e.stats.last_ns);
    tgids.insert(e.tgid);
  }
  if (k.total > 0) k.first_ns = first;
  k.processes = tgids.size();
  k.dropped = counter_->counter.dropped();
#else
  (void)throttle_id;
#endif
  return k;
}

}  // namespace mpt::trial
