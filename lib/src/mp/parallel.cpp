#include "mpt/detail/parallel.hpp"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <exception>
#include <new>

#include "clock.hpp"
#include "futex.hpp"

namespace mpt::detail {

namespace {

using namespace std::chrono_literals;

[[noreturn]] void parent_gone() noexcept {
  _exit(1);
}

void check_parent(const WorkerControl& ctl) noexcept {
  if (getppid() != ctl.parent) parent_gone();
}

}  // namespace

void record_worker_error(WorkerSlot& slot, const std::string& what) noexcept {
  if (slot.error_len.load(std::memory_order_relaxed) != 0) return;
  const std::size_t n = std::min(what.size(), kWorkerErrorBytes - 1);
  std::memcpy(slot.error, what.data(), n);
  slot.error[n] = '\0';
  slot.error_len.store(static_cast<std::uint32_t>(n ? n : 1), std::memory_order_release);
}

void reserve_results(WorkerControl& ctl, std::int64_t n) noexcept {
  for (;;) {
    std::int64_t cur = ctl.results_reserved.load();
    while (cur + n <= ctl.max_results) {
      if (ctl.results_reserved.compare_exchange_weak(cur, cur + n)) return;
    }
    ctl.credit_waiters.fetch_add(1);
    const std::uint32_t seq = ctl.credit_seq.load();
    if (ctl.results_reserved.load() + n > ctl.max_results)
      futex_wait(&ctl.credit_seq, seq, mono_ns() + 200'000'000);
    ctl.credit_waiters.fetch_sub(1);
    check_parent(ctl);
  }
}

void release_results(WorkerControl& ctl, std::int64_t n) noexcept {
  ctl.results_reserved.fetch_sub(n);
  ctl.credit_seq.fetch_add(1);
  if (ctl.credit_waiters.load() != 0) futex_wake(&ctl.credit_seq, INT_MAX);
}

bool worker_get(Queue& q, std::vector<std::byte>& buf, const WorkerControl& ctl) {
  for (;;) {
    if (q.get_into(buf, 200ms)) return true;
    if (q.closed()) return false;
    check_parent(ctl);
  }
}

void worker_put(Queue& q, std::span<const std::byte> msg, const WorkerControl& ctl) {
  while (!q.put(msg, 200ms)) {
    if (q.closed()) parent_gone();
    check_parent(ctl);
  }
}

WorkerGroup::WorkerGroup(std::string what, int workers, std::int64_t max_results, const Body& body)
    : what_(std::move(what)) {
  if (workers < 1 || static_cast<std::size_t>(workers) > kMaxWorkers)
    throw InvalidArgument(what_ + ": workers must be 1.." + std::to_string(kMaxWorkers) + ", not " +
                          std::to_string(workers));
  ctl_bytes_ = sizeof(WorkerControl) + sizeof(WorkerSlot) * static_cast<std::size_t>(workers);
  void* p = mmap(nullptr, ctl_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw SystemError(what_ + ": mmap of the worker control block", errno);
  ctl_ = new (p) WorkerControl{};
  ctl_->max_results = max_results;
  ctl_->parent = getpid();
  for (int i = 0; i < workers; ++i) {
    auto* slot = new (&ctl_->slots[i]) WorkerSlot{};
    slot->item.store(-1);
  }
  done_.assign(workers, false);
  WorkerControl* ctl = ctl_;
  try {
    workers_.emplace(
        workers,
        [ctl, &body](int i) -> int {
          WorkerSlot& slot = ctl->slots[i];
          try {
            body(i, *ctl, slot);
          } catch (const std::exception& e) {
            record_worker_error(slot, e.what());
            return 1;
          } catch (...) {
            record_worker_error(slot, "unknown exception");
            return 1;
          }
          return 0;
        },
        ProcessOptions{what_ + "-worker", true});
    workers_->start();
  } catch (...) {
    kill_all();
    munmap(ctl_, ctl_bytes_);
    throw;
  }
}

WorkerGroup::~WorkerGroup() {
  kill_all();
  workers_.reset();
  if (ctl_) munmap(ctl_, ctl_bytes_);
}

void WorkerGroup::kill_all() noexcept {
  if (!workers_) return;
  workers_->kill();
  workers_->join();
}

bool WorkerGroup::any_exited() noexcept {
  return workers_->any_exited();
}

bool WorkerGroup::all_exited() noexcept {
  return workers_->all_exited();
}

std::vector<pid_t> WorkerGroup::pids() const {
  return workers_->pids();
}

void WorkerGroup::check(bool jobs_closed) {
  for (int i = 0; i < workers_->size(); ++i) {
    if (done_[static_cast<std::size_t>(i)]) continue;
    const std::optional<int> code = (*workers_)[i].exitcode();
    if (!code) continue;
    WorkerSlot& slot = ctl_->slots[i];
    const std::int64_t item = slot.item.load();
    if (*code == 0 && item < 0 && jobs_closed) {
      done_[static_cast<std::size_t>(i)] = true;
      continue;
    }
    const pid_t pid = (*workers_)[i].pid();
    kill_all();
    std::string msg = what_ + ": worker " + std::to_string(i + 1) + " (pid " + std::to_string(pid) +
                      ") " + describe_exitcode(*code);
    msg += item >= 0 ? " while processing item " + std::to_string(item) : " holding no item";
    if (slot.error_len.load(std::memory_order_acquire) != 0) msg += ": " + std::string(slot.error);
    throw WorkerDied(msg, pid, item, *code);
  }
}

void WorkerGroup::finish(std::chrono::nanoseconds grace) noexcept {
  workers_->join_or_kill(grace);
}

}  // namespace mpt::detail
