// mpt/process.hpp — a callable run in a forked child process (Python's multiprocessing.Process).
//
//   mpt::Process p([] { std::puts("worker"); }, {.name = "w1"});
//   p.start();
//   p.join(2s);                         // true once the child has exited
//   int code = p.exitcode().value();    // 0, the exit status, or minus the signal number
//
// The child is a fork() of the caller: it sees a copy of the caller's memory, and shares what was
// mapped MAP_SHARED (segments: Event, Lock, Queue, Throttle, ...). It runs the target and exits
// with _exit(): status 0 when the target returns (or the int it returns), 1 when it throws (the
// exception's message goes to stderr, as Python prints the traceback). stdio buffers are flushed
// before the fork and before the child exits, so nothing is printed twice.
//
// Daemon children get PR_SET_PDEATHSIG SIGKILL: they die when their parent does, however it ends.
// (Linux sends it when the *thread* that called start() exits: start daemons from a thread that
// lives as long as they should.) Non-daemon children keep running after their parent exits.
//
// Subclassing (Python's `class Worker(multiprocessing.Process)` overriding run()): derive from
// Process, build the base with the protected constructor, and override run(); the lifecycle is
// the same as a Process built from a callable.
//
//   class Worker : public mpt::Process {
//    public:
//     Worker() : Process({}, "Worker") {}          // default names Worker-1, Worker-2, ...
//     int run() override {                          // in the child; returns the exit status
//       std::printf("In %s\n", name().c_str());
//       return 0;
//     }
//   };
//   Worker w; w.start(); w.join();
//
// run() is called in the child on the child's copy of the object, fully constructed (start()
// must not be called from a constructor or destructor of the subclass's bases). The default
// run() calls the target; a Process with neither a target nor an override (a subclass object
// moved into a plain Process, whose run() is then Process's) exits with status 1 and says why.
// Keep subclass objects by their own type, or by pointer (std::unique_ptr<Process>): the
// destructor is virtual. A subclass object may be moved (its own members move with its move
// constructor).
//
// Logging (mpt/log.hpp): the child logs "child process calling run()" and "process exiting with
// exitcode N" at INFO, as Python's multiprocessing does.
//
// Lifetime: destroying a Process whose child still runs kills it (SIGKILL) if it is a daemon and
// waits for it otherwise (Python joins non-daemon children at exit); either way it is reaped, so
// no zombie stays behind.
//
// Not safe for concurrent use: one thread drives a Process object.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpt {

struct ProcessOptions {
  std::string name = {};  // empty: "Process-N", N counting from 1 in the creating process
  bool daemon = false;    // the child dies with its parent
};

class Process {
 public:
  // Process(target, options): target is any callable taking no arguments, returning void or an
  // int (the child's exit status, 0..255). Nothing runs until start().
  template <class F>
  requires std::is_invocable_v<F&>
  explicit Process(F&& target, ProcessOptions options = {})
      : Process(wrap(std::forward<F>(target)), std::move(options), 0) {}

  virtual ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Process::start(): forks the child. Throws InvalidArgument if already started, SystemError
  // if fork() fails.
  void start();

  // Process::join()
  // Blocks until the child has exited (returns true, exitcode() is set) or the timeout passes
  // (returns false; none: forever; zero: only checks). Throws InvalidArgument before start().
  bool join(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  // Process::is_alive(): started and not yet exited. Never blocks (reaps a finished child).
  bool is_alive();

  // Process::exitcode(): nullopt until the child has exited (checked without blocking); then 0,
  // the exit status, or minus the signal that killed it (-9 for SIGKILL), as in Python.
  std::optional<int> exitcode();

  // Process::terminate() / kill(): SIGTERM / SIGKILL to a running child; no effect otherwise.
  void terminate() noexcept;
  void kill() noexcept;

  pid_t pid() const noexcept { return pid_; }  // 0 before start()
  const std::string& name() const noexcept { return name_; }
  bool daemon() const noexcept { return daemon_; }

  // Process::run(): what the child does (Python's run()); its return value is the exit status
  // (0..255), an exception makes it 1. The default calls the target. Called by start() in the
  // child; calling it directly runs it here, in the calling process.
  virtual int run();

 protected:
  // For subclasses that override run(): no target. An empty options.name gives "<kind>-N", N
  // counting every Process made in this process, as Python names a subclass's instances.
  explicit Process(ProcessOptions options = {}, std::string_view kind = "Process");

 private:
  template <class F>
  static std::function<int()> wrap(F&& f) {
    if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
      return [g = std::forward<F>(f)]() mutable {
        g();
        return 0;
      };
    } else {
      return [g = std::forward<F>(f)]() mutable { return static_cast<int>(g()); };
    }
  }
  Process(std::function<int()> target, ProcessOptions options, int);
  bool poll() noexcept;  // reaps without blocking; true once exited
  void close_pidfd() noexcept;
  void release() noexcept;                    // what the destructor does
  [[noreturn]] void run_in_child() noexcept;  // after fork(), in the child

  std::function<int()> target_;
  std::string name_;
  bool daemon_ = false;
  pid_t pid_ = 0;
  int pidfd_ = -1;
  std::optional<int> exitcode_;
};

// A group of worker processes running one target: started together, joined together.
//
//   mpt::ProcessGroup workers(4, [&](int i) { work(i); }, {.name = "worker", .daemon = true});
//   workers.start();
//   ...                                  // tell them to finish (a kill flag, a closed queue)
//   workers.join();
//   if (auto f = workers.first_failure())
//     throw std::runtime_error("worker " + std::to_string(f->index) + " " +
//                              mpt::describe_exitcode(f->exitcode));
//
// Member i (0..n-1) runs target(i) in its own Process, named "<name>-<i+1>" when options.name is
// given (as Python numbers its pool workers), else "Process-N"; options.daemon applies to all.
// Destroying the group destroys its members as Process does: running daemons are killed, the
// others waited for, and every child is reaped.
//
// Not safe for concurrent use: one thread drives a ProcessGroup.
class ProcessGroup {
 public:
  // ProcessGroup(n, target, options): target is any callable taking the member's index (an int)
  // and returning void or an int (the exit status). Nothing runs until start(). Throws
  // InvalidArgument if n < 1.
  template <class F>
  requires std::is_invocable_v<F&, int>
  explicit ProcessGroup(int n, F&& target, ProcessOptions options = {})
      : ProcessGroup(n, wrap(std::forward<F>(target)), std::move(options), 0) {}

  // ProcessGroup::start(): forks the members in index order. If a fork fails it throws
  // SystemError (sys_errno() says why) at once: the members started before it (started() of
  // them) keep running; join or kill them (the destructor does if nothing else has).
  void start();

  // ProcessGroup::join(): waits for every started member with one deadline for all (none:
  // forever). True once all have exited.
  bool join(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  // ProcessGroup::join_or_kill(): join(grace), then SIGKILL the members still running and reap
  // them. True when every member had exited by itself within `grace`.
  bool join_or_kill(std::chrono::nanoseconds grace) noexcept;

  // SIGTERM / SIGKILL to every running member.
  void terminate() noexcept;
  void kill() noexcept;

  // Counts, without blocking (finished children are reaped).
  int size() const noexcept { return static_cast<int>(members_.size()); }
  int started() const noexcept { return started_; }
  bool any_exited();
  bool all_exited();
  int succeeded();  // members that exited with status 0

  // The first member, by index, that exited other than with status 0: its index and exitcode
  // (as Process::exitcode()). nullopt while none has.
  struct Failure {
    int index = 0;
    int exitcode = 0;
  };
  std::optional<Failure> first_failure();

  Process& operator[](int i) { return members_.at(static_cast<std::size_t>(i)); }
  std::vector<pid_t> pids() const;

 private:
  template <class F>
  static std::function<int(int)> wrap(F&& f) {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, int>>) {
      return [g = std::forward<F>(f)](int i) mutable {
        g(i);
        return 0;
      };
    } else {
      return [g = std::forward<F>(f)](int i) mutable { return static_cast<int>(g(i)); };
    }
  }
  ProcessGroup(int n, std::function<int(int)> target, ProcessOptions options, int);

  std::vector<Process> members_;
  int started_ = 0;
};

// The calling process's name: "MainProcess", or the name of the Process it runs in (for logs).
const std::string& current_process_name() noexcept;

// "exited with status 3", "killed by signal 9 (SIGKILL)" for an exitcode as Process::exitcode().
std::string describe_exitcode(int exitcode);

}  // namespace mpt
