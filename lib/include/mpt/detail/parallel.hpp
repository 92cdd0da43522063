// mpt/detail/parallel.hpp — internal machinery shared by Pool (mpt/pool.hpp) and
// process_parallel (mpt/pipeline.hpp). Not a public API: names and layout may change.
//
// Data flow: the parent packs items into batches (one Queue message each: a BatchHeader, then per
// item a u32 length and its Codec encoding) on the jobs queue; workers decode each item, call the
// user's function, and pack the results the same way on the results queue. A WorkerControl block
// in shared memory holds the counters that bound the items in flight and, per worker, the index
// of the item it is processing (so that a dead worker's error names it).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mpt/error.hpp"
#include "mpt/process.hpp"
#include "mpt/queue.hpp"

namespace mpt::detail {

struct BatchHeader {
  std::uint64_t first_index;  // index of the batch's first item (generator / input order)
  std::uint32_t count;        // items in this message
  std::uint32_t reserved;
};
static_assert(sizeof(BatchHeader) == 16);

inline constexpr std::size_t kMaxWorkers = 1024;
inline constexpr std::size_t kWorkerErrorBytes = 512;

struct alignas(64) WorkerSlot {
  std::atomic<std::int64_t> item;  // the item being processed, -1 when none
  std::atomic<std::uint32_t> error_len;
  char error[kWorkerErrorBytes];  // why the worker is about to exit non-zero (set once)
};

struct WorkerControl {
  // Items whose processing finished (their results are on their way to the parent).
  alignas(64) std::atomic<std::uint64_t> finished;
  // Items for which a worker holds result credit (reserved before processing, released by the
  // parent once consumed): never more than max_results.
  alignas(64) std::atomic<std::int64_t> results_reserved;
  std::atomic<std::uint32_t> credit_seq;  // futex word, bumped on release
  std::atomic<std::uint32_t> credit_waiters;
  std::int64_t max_results;
  pid_t parent;
  WorkerSlot slots[1];  // really `workers` of them
};

// Records `what` as the reason worker `slot` fails (the parent puts it in WorkerDied's message).
void record_worker_error(WorkerSlot& slot, const std::string& what) noexcept;

// Worker side: blocks until `n` items of result credit are reserved. Exits the process if the
// parent is gone.
void reserve_results(WorkerControl& ctl, std::int64_t n) noexcept;
// Parent side: gives back `n` items of credit and wakes reserving workers.
void release_results(WorkerControl& ctl, std::int64_t n) noexcept;

// Worker side: queue operations that give up (exiting the process) if the parent is gone.
// get returns false when the queue is closed and empty.
bool worker_get(Queue& q, std::vector<std::byte>& buf, const WorkerControl& ctl);
void worker_put(Queue& q, std::span<const std::byte> msg, const WorkerControl& ctl);

// N worker processes (daemons: they die with the parent) plus their WorkerControl. The destructor
// kills (SIGKILL) and reaps every worker still running: no zombies, no orphans.
class WorkerGroup {
 public:
  using Body = std::function<void(int index, WorkerControl& ctl, WorkerSlot& slot)>;
  // `what` names the call in errors ("process_parallel", "Pool.map"). Forks the workers.
  WorkerGroup(std::string what, int workers, std::int64_t max_results, const Body& body);
  ~WorkerGroup();
  WorkerGroup(const WorkerGroup&) = delete;
  WorkerGroup& operator=(const WorkerGroup&) = delete;

  WorkerControl& control() noexcept { return *ctl_; }
  int size() const noexcept { return workers_->size(); }

  // Reaps exited workers without blocking. A worker that exited with status 0 while holding no
  // item after the jobs queue was closed (`jobs_closed`) has finished normally; any other exit
  // kills and reaps every worker and throws WorkerDied.
  void check(bool jobs_closed);
  // Waits up to `grace` for every worker to exit, then kills and reaps the rest.
  void finish(std::chrono::nanoseconds grace) noexcept;
  // SIGKILL and reap every worker still running.
  void kill_all() noexcept;
  // True when at least one worker has exited (for Pool: workers to replace).
  bool any_exited() noexcept;
  // True when every worker has exited (reaped).
  bool all_exited() noexcept;
  std::vector<pid_t> pids() const;

 private:
  std::string what_;
  std::optional<ProcessGroup> workers_;  // engaged once constructed
  std::vector<bool> done_;               // exited normally and reaped
  WorkerControl* ctl_ = nullptr;
  std::size_t ctl_bytes_ = 0;
};

// Packs items into batch messages of at most `max_bytes` bytes and `max_items` items. An optional
// prefix (Pool's task header) leads every message.
class BatchWriter {
 public:
  BatchWriter(std::size_t max_bytes, std::uint32_t max_items,
              std::span<const std::byte> prefix = {})
      : buf_(max_bytes), max_items_(max_items), base_(prefix.size()) {
    if (max_bytes < base_ + sizeof(BatchHeader) + 8)
      throw InvalidArgument("parallel: max_message_bytes " + std::to_string(max_bytes) +
                            " is too small");
    if (!prefix.empty()) std::memcpy(buf_.data(), prefix.data(), prefix.size());
    reset(0);
  }
  void reset(std::uint64_t first_index) noexcept {
    first_ = first_index;
    count_ = 0;
    off_ = base_ + sizeof(BatchHeader);
  }
  std::uint32_t count() const noexcept { return count_; }
  bool full() const noexcept { return count_ >= max_items_; }
  // Largest encoding one item may have.
  std::size_t max_item_bytes() const noexcept {
    return buf_.size() - base_ - sizeof(BatchHeader) - 4;
  }
  // Appends v if it fits (false: seal the batch first). Precondition: the encoding is at most
  // max_item_bytes().
  template <class T>
  bool try_add(const T& v, std::size_t encoded_size) {
    if (count_ >= max_items_ || off_ + 4 + encoded_size > buf_.size()) return false;
    const auto len = static_cast<std::uint32_t>(encoded_size);
    std::memcpy(buf_.data() + off_, &len, 4);
    Codec<T>::encode(v, buf_.data() + off_ + 4);
    off_ += 4 + encoded_size;
    ++count_;
    return true;
  }
  // The message: prefix, header, items.
  std::span<const std::byte> seal() noexcept {
    BatchHeader h{first_, count_, 0};
    std::memcpy(buf_.data() + base_, &h, sizeof h);
    return std::span<const std::byte>(buf_.data(), off_);
  }

 private:
  std::vector<std::byte> buf_;
  std::uint32_t max_items_;
  std::size_t base_;
  std::uint64_t first_ = 0;
  std::uint32_t count_ = 0;
  std::size_t off_ = 0;
};

// Calls f(index, bytes) for every item of a batch message. Throws IncompatibleSegment-free
// InvalidArgument on a malformed message (never happens between our own processes).
template <class F>
std::uint32_t for_each_item(std::span<const std::byte> msg, F&& f) {
  if (msg.size() < sizeof(BatchHeader)) throw InvalidArgument("parallel: truncated batch");
  BatchHeader h;
  std::memcpy(&h, msg.data(), sizeof h);
  std::size_t off = sizeof h;
  for (std::uint32_t i = 0; i < h.count; ++i) {
    std::uint32_t len;
    if (msg.size() - off < 4) throw InvalidArgument("parallel: truncated batch");
    std::memcpy(&len, msg.data() + off, 4);
    off += 4;
    if (msg.size() - off < len) throw InvalidArgument("parallel: truncated batch");
    f(h.first_index + i, msg.subspan(off, len));
    off += len;
  }
  return h.count;
}

inline std::uint32_t batch_count(std::span<const std::byte> msg) noexcept {
  BatchHeader h{};
  if (msg.size() >= sizeof h) std::memcpy(&h, msg.data(), sizeof h);
  return h.count;
}

// Worker side: processes one job batch with fn (In -> Out), sending the results (split into
// several messages if they do not fit one) on `results`.
template <class In, class Out, class Fn>
void process_batch(std::span<const std::byte> job, Fn& fn, Queue& results, WorkerControl& ctl,
                   WorkerSlot& slot, BatchWriter& out) {
  const std::uint32_t n = batch_count(job);
  reserve_results(ctl, n);
  bool started = false;
  for_each_item(job, [&](std::uint64_t index, std::span<const std::byte> bytes) {
    slot.item.store(static_cast<std::int64_t>(index), std::memory_order_relaxed);
    if (!started) {
      out.reset(index);
      started = true;
    }
    const Out r = fn(Codec<In>::decode(bytes));
    const std::size_t size = Codec<Out>::size(r);
    if (size > out.max_item_bytes())
      throw InvalidArgument("the result of item " + std::to_string(index) + " encodes to " +
                            std::to_string(size) + " bytes, more than the " +
                            std::to_string(out.max_item_bytes()) + " a message can carry");
    if (!out.try_add(r, size)) {
      worker_put(results, out.seal(), ctl);
      out.reset(index);
      out.try_add(r, size);
    }
  });
  ctl.finished.fetch_add(n, std::memory_order_relaxed);
  if (started && out.count() > 0) worker_put(results, out.seal(), ctl);
  slot.item.store(-1, std::memory_order_relaxed);
}

// Parent side, Pool's in-order delivery: results arrive in completion order and leave in index
// order; those waiting for an earlier one are parked here (parked() counts them, for
// run_parent's bound).
template <class Out>
class InOrder {
 public:
  // Parks r as the result of item `index`, then hands every result now in order to
  // hand(index, Out&&).
  template <class Hand>
  void put(std::uint64_t index, Out&& r, Hand& hand) {
    const std::size_t k = static_cast<std::size_t>(index - base_);
    if (window_.size() <= k) window_.resize(k + 1);
    window_[k].emplace(std::move(r));
    ++parked_;
    while (!window_.empty() && window_.front()) {
      Out v = std::move(*window_.front());
      window_.pop_front();
      --parked_;
      hand(base_++, std::move(v));
    }
  }
  const std::uint64_t* parked() const noexcept { return &parked_; }

 private:
  std::deque<std::optional<Out>> window_;  // items base_, base_ + 1, ...
  std::uint64_t base_ = 0;                 // the next index to hand
  std::uint64_t parked_ = 0;
};

// Parent side of run_parent() (below): its state, and the steps of its loop.
template <class In, class Next, class Consume>
class ParentLoop {
 public:
  ParentLoop(Queue& jobs, Queue& results, WorkerGroup& group, Next& next, Consume& consume,
             std::int64_t max_jobs, std::uint32_t chunk, const char* what,
             std::span<const std::byte> prefix, bool close_jobs, const std::uint64_t* parked)
      : jobs_(jobs),
        results_(results),
        group_(group),
        ctl_(group.control()),
        finished0_(ctl_.finished.load(std::memory_order_relaxed)),
        next_(next),
        consume_(consume),
        max_jobs_(max_jobs),
        what_(what),
        close_jobs_(close_jobs),
        parked_(parked),
        batch_(jobs.max_message_bytes(), chunk, prefix) {}

  void run() {
    using namespace std::chrono_literals;
    auto next_check = std::chrono::steady_clock::now() + 100ms;
    for (;;) {
      bool progress = send_batches();
      const bool all_sent = gen_done_ && !held_ && !sealed_ && batch_.count() == 0;
      if (all_sent && close_jobs_ && !jobs_closed_) {
        jobs_.close();
        jobs_closed_ = true;
      }
      if (consume_ready()) progress = true;
      if (all_sent && consumed_ == generated_) return;
      // Nothing to do: wait for a result, a bounded while, and watch the workers.
      if (!progress && results_.get_into(rbuf_, 20ms)) {
        take_result();
        if (all_sent && consumed_ == generated_) return;
      }
      const auto now = std::chrono::steady_clock::now();
      if (!progress || now >= next_check) {
        group_.check(jobs_closed_);
        next_check = now + 100ms;
      }
    }
  }

 private:
  enum class Fill { kMore, kSeal, kStop };

  // Fills and sends batches while the bound allows. True if a batch was sent.
  bool send_batches() {
    using namespace std::chrono_literals;
    bool progress = false;
    for (;;) {
      if (sealed_) {
        if (!jobs_.put(batch_.seal(), 0ns)) return progress;  // jobs queue full: drain results
        batch_.reset(generated_ - (held_ ? 1 : 0));
        sealed_ = false;
        progress = true;
      }
      const Fill f = fill_step();
      if (f == Fill::kStop) return progress;
      if (f == Fill::kSeal) sealed_ = true;
    }
  }

  // One step of filling the batch: adds the held item, or pulls the next one from the generator.
  // kSeal: the batch must be sent first; kStop: nothing more to send for now.
  Fill fill_step() {
    if (held_) {
      if (!add_held()) return Fill::kSeal;
      held_.reset();
    }
    if (gen_done_) return batch_.count() > 0 ? Fill::kSeal : Fill::kStop;
    if (batch_.full()) return Fill::kSeal;
    const std::uint64_t finished = ctl_.finished.load(std::memory_order_relaxed) - finished0_;
    const std::uint64_t parked = parked_ ? *parked_ : 0;
    if (static_cast<std::int64_t>(generated_ - finished + parked) >= max_jobs_) {
      // Full batches keep the workers efficient: send a partial one only when nothing else is
      // in flight (else wait for results to free room).
      const bool alone = batch_.count() > 0 && generated_ - batch_.count() == finished;
      return alone ? Fill::kSeal : Fill::kStop;
    }
    held_ = next_();
    if (!held_) {
      gen_done_ = true;
      return Fill::kMore;
    }
    if (batch_.count() == 0) batch_.reset(generated_);
    ++generated_;
    return Fill::kMore;
  }

  // Adds the held item to the batch; false if it does not fit (seal the batch first). Throws
  // InvalidArgument if it could fit no batch.
  bool add_held() {
    const std::size_t size = Codec<In>::size(*held_);
    if (size > batch_.max_item_bytes())
      throw InvalidArgument(std::string(what_) + ": item " + std::to_string(generated_ - 1) +
                            " encodes to " + std::to_string(size) + " bytes, more than the " +
                            std::to_string(batch_.max_item_bytes()) +
                            " a message can carry (raise max_message_bytes)");
    return batch_.try_add(*held_, size);
  }

  // Consumes whatever results are there. True if there were any.
  bool consume_ready() {
    using namespace std::chrono_literals;
    bool any = false;
    while (results_.get_into(rbuf_, 0ns)) {
      take_result();
      any = true;
    }
    return any;
  }

  // Hands the result message in rbuf_ to `consume` and gives back its items' credit.
  void take_result() {
    const std::uint32_t n = consume_(std::span<const std::byte>(rbuf_));
    consumed_ += n;
    release_results(ctl_, n);
  }

  Queue& jobs_;
  Queue& results_;
  WorkerGroup& group_;
  WorkerControl& ctl_;
  // ctl_.finished when the call began: a Pool's workers serve many calls, and every item of the
  // earlier ones had finished by the time they returned.
  const std::uint64_t finished0_;
  Next& next_;
  Consume& consume_;
  const std::int64_t max_jobs_;
  const char* what_;
  const bool close_jobs_;
  const std::uint64_t* parked_;  // results the caller holds back (Pool::imap's reorder buffer)
  BatchWriter batch_;
  std::vector<std::byte> rbuf_;
  std::optional<In> held_;  // generated, not yet in a batch (it did not fit)
  std::uint64_t generated_ = 0;
  std::uint64_t consumed_ = 0;
  bool gen_done_ = false;
  bool sealed_ = false;
  bool jobs_closed_ = false;
};

// Parent side: pulls items from `next` (returning std::optional<In>), ships them in batches of
// up to `chunk` items on `jobs`, hands every result message to `consume(msg)` (which returns the
// number of items it consumed), and watches the workers. Never more than `max_jobs` items are
// generated and not yet finished by a worker, plus `*parked` when given: results the caller has
// consumed but holds back (Pool::imap's in-order delivery), so that they too count against the
// bound. Closes `jobs` once everything is sent (unless close_jobs is false: Pool keeps its queues).
// Returns when every generated item's result has been consumed; throws WorkerDied (after killing
// and reaping the workers) if a worker dies, and lets exceptions of `next` and `consume` through
// (the WorkerGroup's owner kills the workers).
template <class In, class Next, class Consume>
void run_parent(Queue& jobs, Queue& results, WorkerGroup& group, Next& next, Consume& consume,
                std::int64_t max_jobs, std::uint32_t chunk, const char* what,
                std::span<const std::byte> prefix = {}, bool close_jobs = true,
                const std::uint64_t* parked = nullptr) {
  ParentLoop<In, Next, Consume>(jobs, results, group, next, consume, max_jobs, chunk, what, prefix,
                                close_jobs, parked)
      .run();
}

}  // namespace mpt::detail
