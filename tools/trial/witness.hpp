// tools/trial/witness.hpp — the kernel as witness of a trial: the eBPF counter attached to every
// process that maps the library, summed per throttle. Shared by `mpt calibrate` and mpt_scenario.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace mpt::trial {

// The eBPF map keeps a count and the first and last timestamps per (tgid, throttle id); a
// throttle's count sums them over every process, its first is their earliest first, its last their
// latest.
struct KernelCount {
  bool counted = false;
  std::string why_not;  // when not counted: why, in words
  std::uint64_t total = 0;
  std::uint64_t first_ns = 0;  // kernel time of the first and last emission (when total > 0)
  std::uint64_t last_ns = 0;
  std::size_t processes = 0;  // distinct processes that emitted
  std::uint64_t dropped = 0;  // events the counter could not file (its map was full)

  // The rate the kernel saw: calibration::achieved_rate_per_sec(total, first_ns, last_ns);
  // nullopt when not counted or with fewer than two emissions.
  std::optional<double> achieved_rate_per_sec() const noexcept;
};

class KernelWitness {
 public:
  // mode: "auto" (count when privileged and built with eBPF), "on" (throws std::runtime_error
  // naming what is missing, after `flag`), "off". Attach before the trial's throttle starts.
  explicit KernelWitness(const std::string& mode, const std::string& flag = "--probe on");
  ~KernelWitness();
  KernelWitness(const KernelWitness&) = delete;
  KernelWitness& operator=(const KernelWitness&) = delete;

  bool counting() const noexcept;
  const std::string& why_not() const noexcept { return why_not_; }
  // The kernel's emit events of `throttle_id`, over every process.
  KernelCount count(std::uint64_t throttle_id) const;

 private:
  struct Counter;
  std::unique_ptr<Counter> counter_;
  std::string why_not_;
};

}  // namespace mpt::trial
