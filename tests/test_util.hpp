// Helpers shared by the tests.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mpt/throttle.hpp"

namespace mpt::test {

// A segment name no other test run uses.
inline std::string unique_name(const std::string& what) {
  static std::atomic<int> counter{0};
  return "test-" + what + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

// --- Waiting for a thread to be asleep, instead of sleeping and hoping -------------------------
//
// A test that means "while the waiter is blocked" checks that it is: the kernel shows each
// thread's state in /proc/PID/task/TID/stat and the system call it is blocked in in .../syscall
// (the first field is the call's number; "running" when it is in none). These helpers read them.

inline std::string read_proc(pid_t pid, pid_t tid, const char* what) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/" + what);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The thread's scheduler state ('R', 'S', 'D', 'Z', ...), or '?' if it is gone.
inline char thread_state(pid_t pid, pid_t tid) {
  const std::string stat = read_proc(pid, tid, "stat");
  const auto close = stat.rfind(')');  // the command name may hold spaces and parentheses
  return close == std::string::npos || close + 2 >= stat.size() ? '?' : stat[close + 2];
}

// True when the thread sleeps (state S) inside system call `nr` (SYS_futex for every lock, event
// and throttle wait; SYS_clock_nanosleep for a sleep). Where the kernel hides .../syscall, the
// sleep alone is taken as enough.
inline bool asleep_in(pid_t pid, pid_t tid, long nr) {
  if (thread_state(pid, tid) != 'S') return false;
  const std::string sc = read_proc(pid, tid, "syscall");
  if (sc.empty()) return true;
  return sc.rfind(std::to_string(nr) + " ", 0) == 0;
}

// Waits until the thread sleeps in system call `nr` (see asleep_in); false after `limit`.
inline bool wait_until_asleep_in(pid_t pid, pid_t tid, long nr = SYS_futex,
                                 std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!asleep_in(pid, tid, nr)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// A single-threaded process (a forked or exec'd child) asleep in a futex wait.
inline bool wait_until_futex_asleep(pid_t pid,
                                    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  return wait_until_asleep_in(pid, pid, SYS_futex, limit);
}

// A std::thread that publishes its kernel thread id before running `fn`, so that a test can wait
// until it is asleep.
class TidThread {
 public:
  template <class Fn>
  explicit TidThread(Fn fn)
      : thread_([this, fn]() mutable {
          tid_.store(static_cast<pid_t>(::syscall(SYS_gettid)));
          fn();
        }) {}
  ~TidThread() {
    if (thread_.joinable()) thread_.join();
  }
  pid_t tid() const {
    pid_t t;
    while ((t = tid_.load()) == 0)
      std::this_thread::yield();
    return t;
  }
  // Waits until the thread sleeps in a futex wait (see asleep_in).
  bool wait_until_futex_asleep(std::chrono::milliseconds limit = std::chrono::seconds(10)) const {
    return wait_until_asleep_in(getpid(), tid(), SYS_futex, limit);
  }
  void join() { thread_.join(); }

 private:
  std::atomic<pid_t> tid_{0};
  std::thread thread_;
};

// Polls `done` every 5 ms until it holds; false after `limit` (a bound for a test that would
// otherwise hang, not a timing assertion).
template <class Pred>
bool wait_for(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Waits for a child with a bound; kills it and returns -1 if it does not finish in time.
inline int wait_child(pid_t pid, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  if (pid <= 0) return -1;  // no child: waitpid and kill would take -1 as "any" / "every process"
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// A child running the seed's worker loop (until the kill flag, or `max_units`); its exit status is
// the number of units it took, capped at 250.
inline pid_t fork_worker(Throttle& t, int max_units = -1) {
  pid_t pid = fork();
  if (pid == 0) {
    int taken = 0;
    auto kill = t.kill_flag();
    while (!kill.is_set() && (max_units < 0 || taken < max_units))
      taken += t.await_fuel() ? 1 : 0;
    _exit(taken < 250 ? taken : 250);
  }
  return pid;
}

struct WorkerRun {
  Summary summary;                   // what stop() returned
  std::uint64_t units_reported = 0;  // the workers' own counts, sent through a pipe
  int reports = 0;                   // workers whose count arrived
  bool all_exited = true;            // every worker finished within 5 s of stop()
};

// Forks `workers` workers on `t` (they wait for the start), waits until each sleeps in that wait,
// starts it, lets them run for `run`, stops it and reaps them. Each worker writes the number of
// units it took to a pipe before it exits.
inline WorkerRun run_workers(Throttle& t, int workers, std::chrono::milliseconds run) {
  int fds[2];
  if (pipe(fds) != 0) return {{}, 0, 0, false};
  std::vector<pid_t> pids;
  for (int i = 0; i < workers; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      std::uint64_t taken = 0;
      auto kill = t.kill_flag();
      while (!kill.is_set())
        taken += t.await_fuel() ? 1 : 0;
      _exit(write(fds[1], &taken, sizeof taken) == sizeof taken ? 0 : 1);
    }
    pids.push_back(pid);
  }
  close(fds[1]);
  for (pid_t p : pids)
    wait_until_futex_asleep(p);
  t.start();
  std::this_thread::sleep_for(run);
  WorkerRun r;
  r.summary = t.stop();
  for (pid_t p : pids)
    r.all_exited = wait_child(p, std::chrono::seconds(5)) == 0 && r.all_exited;
  std::uint64_t n = 0;
  while (read(fds[0], &n, sizeof n) == sizeof n) {
    r.units_reported += n;
    ++r.reports;
  }
  close(fds[0]);
  return r;
}

// --- Running a program: the `mpt` binary, and the few others tests drive -----------------------
//
// One way for every test: fork, then execvp with the arguments as they are (no shell, no quoting).
// stdin is /dev/null; stdout and stderr go to temporary files of the test's own (mkstemp), so
// tests that run side by side (ctest -j) never share one.

// What a finished program left: its exit status as wait_child() gives it (the status, 128 + the
// signal, or -1 when it was killed at the time limit), its stdout and its stderr.
struct ProgramResult {
  int code = -1;
  std::string out;
  std::string err;
};

inline std::string slurp_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A running program: argv[0] is its path (or a name looked up in $PATH). Its stdout goes to
// `stdout_fd` instead of a file when one is given (a pipe, to read it as it comes). The destructor
// kills (SIGKILL) and reaps it if it still runs, and removes the files.
class Program {
 public:
  explicit Program(const std::vector<std::string>& argv, int stdout_fd = -1) {
    // Close-on-exec: a program another thread starts meanwhile does not inherit them.
    char out[] = "/tmp/mpt-test-out.XXXXXX";
    char err[] = "/tmp/mpt-test-err.XXXXXX";
    const int fo = mkostemp(out, O_CLOEXEC);
    const int fe = mkostemp(err, O_CLOEXEC);
    if (fo < 0 || fe < 0) throw std::runtime_error("Program: cannot make its output files");
    out_ = out;
    err_ = err;
    std::vector<char*> args;  // built before the fork: the child only calls what is safe there
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(open("/dev/null", O_RDONLY | O_CLOEXEC), STDIN_FILENO);
      dup2(stdout_fd >= 0 ? stdout_fd : fo, STDOUT_FILENO);
      dup2(fe, STDERR_FILENO);
      execvp(args[0], args.data());
      _exit(127);
    }
    close(fo);
    close(fe);
    if (pid_ < 0) throw std::runtime_error("Program: fork failed for " + argv.at(0));
  }
  ~Program() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    unlink(out_.c_str());
    unlink(err_.c_str());
  }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  void signal(int sig) const {
    if (pid_ > 0) kill(pid_, sig);  // never kill(-1, ...): after wait() there is no child
  }
  pid_t pid() const { return pid_; }
  std::string out_so_far() const { return slurp_file(out_); }
  // Waits for the exit (killing it after `limit`), then reads what it wrote.
  ProgramResult wait(std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    if (pid_ <= 0) throw std::logic_error("Program: waited for twice");
    ProgramResult r;
    r.code = wait_child(pid_, limit);
    pid_ = -1;
    r.out = slurp_file(out_);
    r.err = slurp_file(err_);
    return r;
  }

 private:
  pid_t pid_ = -1;
  std::string out_, err_;
};

// Runs a program to its end (at most `limit`).
inline ProgramResult run_program(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  return Program(argv).wait(limit);
}

#ifdef MPT_BINARY
// `mpt ARGS...`: the binary CMake built (MPT_BINARY, given to the test targets that run it).
inline std::vector<std::string> mpt_argv(const std::vector<std::string>& args) {
  std::vector<std::string> argv{MPT_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// A running `mpt ARGS...` (see Program).
class MptProcess : public Program {
 public:
  explicit MptProcess(const std::vector<std::string>& args, int stdout_fd = -1)
      : Program(mpt_argv(args), stdout_fd) {}
};

// Runs `mpt ARGS...` to its end: {exit status, stdout, stderr}.
inline ProgramResult run_mpt(const std::vector<std::string>& args,
                             std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  return run_program(mpt_argv(args), limit);
}
#endif

}  // namespace mpt::test
