// tools/trial/witness.hpp — the kernel as witness of a trial: the eBPF counter attached to every
// process that maps the library, summed per throttle. Shared by `mpt calibrate` and mpt_scenario.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace mpt::trial {

struct KernelCount {
  bool counted = false;
  std::string why_not;  // when not counted: why, in words
  std::uint64_t total = 0;
  std::uint64_t first_ns = 0;  // kernel time of the first and last emission (when total > 0)
  std::uint64_t last_ns = 0;
};

class KernelWitness {
 public:
  // mode: "auto" (count when privileged and built with eBPF), "on" (throws std::runtime_error
  // naming what is missing), "off". Attach before the trial's throttle starts.
  explicit KernelWitness(const std::string& mode);
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
