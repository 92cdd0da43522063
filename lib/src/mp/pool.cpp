#include "mpt/pool.hpp"

#include <climits>
#include <thread>

#include "mpt/error.hpp"

namespace mpt {

Pool::Pool(int processes, std::function<void()> initializer, PoolOptions options)
    : processes_(detail::resolve_workers(processes)),
      initializer_(std::move(initializer)),
      options_(options) {
  if (processes < 0) throw InvalidArgument("Pool: processes " + std::to_string(processes) + " < 0");
  ensure_workers();
}

Pool::~Pool() {
  terminate();
}

void Pool::ensure_workers() {
  if (closed_) throw InvalidArgument("Pool: map() after close()");
  if (group_ && !group_->any_exited()) return;
  group_.reset();  // kills and reaps what is left of the old set
  QueueOptions q;
  q.capacity = 2 * static_cast<std::size_t>(processes_) + 2;
  q.max_message_bytes = options_.max_message_bytes;
  jobs_ = std::make_unique<Queue>(Queue::anonymous(q));
  results_ = std::make_unique<Queue>(Queue::anonymous(q));
  group_ = std::make_unique<detail::WorkerGroup>(
      "Pool", processes_, INT64_MAX,
      [this](int, detail::WorkerControl& ctl, detail::WorkerSlot& slot) { serve(ctl, slot); });
}

void Pool::serve(detail::WorkerControl& ctl, detail::WorkerSlot& slot) {
  if (initializer_) initializer_();
  std::vector<std::byte> in;
  detail::BatchWriter out(results_->max_message_bytes(), UINT32_MAX);
  while (detail::worker_get(*jobs_, in, ctl)) {
    const std::span<const std::byte> msg(in);
    TaskHeader th;
    if (msg.size() < sizeof th) throw InvalidArgument("Pool: truncated task");
    std::memcpy(&th, msg.data(), sizeof th);
    if (msg.size() < sizeof th + th.fn_bytes) throw InvalidArgument("Pool: truncated task");
    auto run = reinterpret_cast<Trampoline>(th.trampoline);
    run(msg.subspan(sizeof th, th.fn_bytes), msg.subspan(sizeof th + th.fn_bytes), *results_, ctl,
        slot, out);
  }
}

std::uint32_t Pool::chunk_for(std::size_t n) const noexcept {
  if (options_.chunk_size) return options_.chunk_size;
  const std::size_t c = n / (4 * static_cast<std::size_t>(processes_));
  return static_cast<std::uint32_t>(std::clamp<std::size_t>(c, 1, 1024));
}

void Pool::close() {
  closed_ = true;
  if (jobs_) jobs_->close();
}

bool Pool::join(std::optional<std::chrono::nanoseconds> timeout) {
  if (!closed_) throw InvalidArgument("Pool: join() before close()");
  if (!group_) return true;
  const auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                                : std::chrono::steady_clock::time_point::max();
  for (;;) {
    if (group_->all_exited()) {
      group_.reset();
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void Pool::terminate() noexcept {
  group_.reset();
}

std::vector<pid_t> Pool::pids() const {
  return group_ ? group_->pids() : std::vector<pid_t>{};
}

}  // namespace mpt
