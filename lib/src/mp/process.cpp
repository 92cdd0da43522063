#include "mpt/process.hpp"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <thread>
#include <typeinfo>

#include "child_process.hpp"
#include "clock.hpp"
#include "mpt/error.hpp"
#include "mpt/log.hpp"

namespace mpt {

namespace detail {

void die_with_parent(pid_t parent) noexcept {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The parent died before we asked to follow it: end the way the death signal would have ended
  // us (an _exit(1) here would make the child's fate depend on a race with its parent).
  if (getppid() != parent) raise(SIGKILL);
}

pid_t fork_dying_with_parent() noexcept {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) die_with_parent(parent);
  return pid;
}

}  // namespace detail

namespace {

std::atomic<int> g_process_counter{0};

std::string& process_name_storage() {
  static std::string name = "MainProcess";
  return name;
}

int exitcode_from_status(int status) noexcept {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

void flush_all() noexcept {
  try {
    std::cout.flush();
    std::cerr.flush();
  } catch (...) {
  }
  std::fflush(nullptr);
}

}  // namespace

const std::string& current_process_name() noexcept {
  return process_name_storage();
}

std::string describe_exitcode(int exitcode) {
  if (exitcode >= 0) return "exited with status " + std::to_string(exitcode);
  const int sig = -exitcode;
  const char* abbrev = sigabbrev_np(sig);
  return "killed by signal " + std::to_string(sig) +
         (abbrev ? " (SIG" + std::string(abbrev) + ")" : std::string());
}

Process::Process(std::function<int()> target, ProcessOptions options, int)
    : Process(std::move(options)) {
  target_ = std::move(target);
}

Process::Process(ProcessOptions options, std::string_view kind)
    : name_(std::move(options.name)), daemon_(options.daemon) {
  const int n = ++g_process_counter;
  if (name_.empty()) name_ = std::string(kind) + "-" + std::to_string(n);
}

Process::~Process() {
  release();
}

// Kills (daemons) or waits for a running child and reaps it; closes the pidfd. Never calls run():
// in a subclass, the derived part is gone by the time the base destructor gets here.
void Process::release() noexcept {
  if (pid_ > 0 && !exitcode_) {
    if (daemon_) kill();
    join();
  }
  close_pidfd();
}

Process::Process(Process&& o) noexcept
    : target_(std::move(o.target_)),
      name_(std::move(o.name_)),
      daemon_(o.daemon_),
      pid_(std::exchange(o.pid_, 0)),
      pidfd_(std::exchange(o.pidfd_, -1)),
      exitcode_(std::exchange(o.exitcode_, std::nullopt)) {}

// Member by member (not destroy-and-rebuild: in a subclass, that would end the derived object).
Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    release();
    target_ = std::move(o.target_);
    name_ = std::move(o.name_);
    daemon_ = o.daemon_;
    pid_ = std::exchange(o.pid_, 0);
    pidfd_ = std::exchange(o.pidfd_, -1);
    exitcode_ = std::exchange(o.exitcode_, std::nullopt);
  }
  return *this;
}

int Process::run() {
  if (!target_)
    throw InvalidArgument("process '" + name_ +
                          "' has no target and its run() is not overridden (a subclass object "
                          "moved into a plain Process loses its run())");
  return target_();
}

void Process::close_pidfd() noexcept {
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
}

void Process::start() {
  if (pid_ != 0) throw InvalidArgument("process '" + name_ + "' was already started");
  // Said here, in the parent: a plain Process with no target (a subclass object sliced into one)
  // would only fail in the child.
  if (!target_ && typeid(*this) == typeid(Process)) {
    throw InvalidArgument("process '" + name_ +
                          "' has no target and its run() is not overridden (a subclass object "
                          "moved into a plain Process loses its run())");
  }
  flush_all();
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw SystemError("process '" + name_ + "': fork failed", errno);
  if (pid == 0) {
    if (daemon_) detail::die_with_parent(parent);
    run_in_child();
  }
  pid_ = pid;
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));  // -1: join falls back to polling
}

void Process::run_in_child() noexcept {
  process_name_storage() = name_;
  prctl(PR_SET_NAME, name_.substr(0, 15).c_str());
  log_info("child process calling run()");
  int status = 0;
  try {
    status = run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "Process %s: uncaught exception: %s\n", name_.c_str(), e.what());
    status = 1;
  } catch (...) {
    std::fprintf(stderr, "Process %s: uncaught exception\n", name_.c_str());
    status = 1;
  }
  if (log_enabled(LogLevel::kInfo))
    log_info("process exiting with exitcode " + std::to_string(status & 0xff));
  flush_all();  // after the last record: a sink may write through stdio
  _exit(status & 0xff);
}

bool Process::poll() noexcept {
  if (exitcode_) return true;
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exitcode_ = exitcode_from_status(status);
    close_pidfd();
    return true;
  }
  if (r < 0 && errno == ECHILD) {  // reaped by someone else (a SIGCHLD handler): unknown status
    exitcode_ = -1;
    close_pidfd();
    return true;
  }
  return false;
}

bool Process::join(std::optional<std::chrono::nanoseconds> timeout) {
  if (pid_ == 0) throw InvalidArgument("process '" + name_ + "' cannot be joined before start()");
  if (poll()) return true;
  const std::int64_t deadline = timeout ? detail::deadline_after_ns(timeout->count()) : -1;
  for (;;) {
    int wait_ms = 10;
    if (timeout) {
      const std::int64_t left = deadline - detail::mono_ns();
      if (left <= 0) return poll();
      wait_ms = static_cast<int>(std::min<std::int64_t>((left + 999'999) / 1'000'000, 10));
    }
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, timeout ? wait_ms : -1);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(wait_ms, 2)));
    }
    if (poll()) return true;
  }
}

bool Process::is_alive() {
  return pid_ > 0 && !poll();
}

std::optional<int> Process::exitcode() {
  poll();
  return exitcode_;
}

void Process::terminate() noexcept {
  if (pid_ > 0 && !poll()) ::kill(pid_, SIGTERM);
}

void Process::kill() noexcept {
  if (pid_ > 0 && !poll()) ::kill(pid_, SIGKILL);
}

ProcessGroup::ProcessGroup(int n, std::function<int(int)> target, ProcessOptions options, int) {
  if (n < 1)
    throw InvalidArgument("a process group needs at least 1 member, not " + std::to_string(n));
  // One copy of the target, shared by the members (each child runs it on its own copy of memory).
  auto shared = std::make_shared<std::function<int(int)>>(std::move(target));
  members_.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    ProcessOptions o{options.name.empty() ? "" : options.name + "-" + std::to_string(i + 1),
                     options.daemon};
    members_.emplace_back([shared, i] { return (*shared)(i); }, std::move(o));
  }
}

void ProcessGroup::start() {
  for (; started_ < size(); ++started_)
    members_[static_cast<std::size_t>(started_)].start();
}

bool ProcessGroup::join(std::optional<std::chrono::nanoseconds> timeout) {
  const std::int64_t deadline = timeout ? detail::deadline_after_ns(timeout->count()) : -1;
  bool all = true;
  for (int i = 0; i < started_; ++i) {
    // A member moved out through operator[] has nothing left to join (and join() would throw).
    if (members_[static_cast<std::size_t>(i)].pid() == 0) continue;
    std::optional<std::chrono::nanoseconds> left;
    if (timeout)
      left = std::chrono::nanoseconds(std::max<std::int64_t>(deadline - detail::mono_ns(), 0));
    all = members_[static_cast<std::size_t>(i)].join(left) && all;
  }
  return all;
}

bool ProcessGroup::join_or_kill(std::chrono::nanoseconds grace) noexcept {
  const bool clean = join(grace);
  if (!clean) {
    kill();
    join();
  }
  return clean;
}

void ProcessGroup::terminate() noexcept {
  for (auto& m : members_)
    m.terminate();
}

void ProcessGroup::kill() noexcept {
  for (auto& m : members_)
    m.kill();
}

bool ProcessGroup::any_exited() {
  for (auto& m : members_)
    if (m.exitcode()) return true;
  return false;
}

bool ProcessGroup::all_exited() {
  for (auto& m : members_)
    if (!m.exitcode()) return false;
  return true;
}

int ProcessGroup::succeeded() {
  int n = 0;
  for (auto& m : members_)
    n += m.exitcode() == 0 ? 1 : 0;
  return n;
}

std::optional<ProcessGroup::Failure> ProcessGroup::first_failure() {
  for (int i = 0; i < size(); ++i) {
    const std::optional<int> code = members_[static_cast<std::size_t>(i)].exitcode();
    if (code && *code != 0) return Failure{i, *code};
  }
  return std::nullopt;
}

std::vector<pid_t> ProcessGroup::pids() const {
  std::vector<pid_t> out;
  for (const auto& m : members_)
    out.push_back(m.pid());
  return out;
}

}  // namespace mpt
