// Subclasses of mpt::Process overriding run(), with real child processes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mpt/error.hpp"
#include "mpt/event.hpp"
#include "mpt/process.hpp"
#include "mpt/queue.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

// Calls of run(), counted in shared memory: by whom (child or parent).
struct RunCalls {
  std::atomic<int> in_child{0};
  std::atomic<int> in_parent{0};
};

RunCalls* run_calls() {
  void* p =
      mmap(nullptr, sizeof(RunCalls), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  EXPECT_NE(p, MAP_FAILED);
  return new (p) RunCalls{};
}

// The seed's Worker: reports its name from run(), and exits with the status it was given.
class Worker : public Process {
 public:
  Worker(Queue q, int status, ProcessOptions options = {})
      : Process(std::move(options), "Worker"), q_(std::move(q)), status_(status) {}
  int run() override {
    (void)q_.put("In " + name() + " (" + current_process_name() + ")", 5s);
    return status_;
  }

 private:
  Queue q_;
  int status_;
};

TEST(ProcessSubclassTest, RunIsCalledInTheChildAndItsReturnIsTheExitCode) {
  auto q = Queue::anonymous({.capacity = 8, .max_message_bytes = 64});
  Worker ok(q, 0), three(q, 3, {.name = "three"});
  EXPECT_EQ(ok.name().rfind("Worker-", 0), 0u) << ok.name();
  EXPECT_EQ(three.name(), "three");
  EXPECT_EQ(ok.pid(), 0);
  ok.start();
  three.start();
  EXPECT_GT(ok.pid(), 0);
  ASSERT_TRUE(ok.join(10s));
  ASSERT_TRUE(three.join(10s));
  EXPECT_EQ(ok.exitcode(), 0);
  EXPECT_EQ(three.exitcode(), 3);
  std::vector<std::string> got{q.get_value<std::string>(1s).value_or(""),
                               q.get_value<std::string>(1s).value_or("")};
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"In " + ok.name() + " (" + ok.name() + ")",
                                           "In three (three)"}));
  EXPECT_THROW(ok.start(), InvalidArgument);
  EXPECT_EQ(current_process_name(), "MainProcess");
}

class Thrower : public Process {
 public:
  Thrower() : Process({}, "Thrower") {}
  int run() override { throw std::runtime_error("run failed"); }
};

class Sleeper : public Process {
 public:
  explicit Sleeper(ProcessOptions o = {}) : Process(std::move(o), "Sleeper") {}
  int run() override {
    for (;;)
      pause();
  }
};

TEST(ProcessSubclassTest, ExceptionTerminateAndKillAsForACallable) {
  Thrower t;
  Sleeper term, kill({.daemon = true});
  EXPECT_TRUE(kill.daemon());
  t.start();
  term.start();
  kill.start();
  ASSERT_TRUE(t.join(10s));
  EXPECT_EQ(t.exitcode(), 1);
  EXPECT_TRUE(term.is_alive());
  EXPECT_FALSE(term.join(50ms));
  term.terminate();
  kill.kill();
  ASSERT_TRUE(term.join(10s));
  ASSERT_TRUE(kill.join(10s));
  EXPECT_EQ(term.exitcode(), -SIGTERM);
  EXPECT_EQ(kill.exitcode(), -SIGKILL);
}

// run() counts its calls by process; the subclass's destructor runs while the child still runs.
class Counted : public Process {
 public:
  Counted(RunCalls* calls, Event release, pid_t parent, bool daemon)
      : Process({.daemon = daemon}, "Counted"), calls_(calls), release_(release), parent_(parent) {}
  ~Counted() override { calls_ = nullptr; }  // a run() after this would crash the parent
  int run() override {
    (getpid() == parent_ ? calls_->in_parent : calls_->in_child).fetch_add(1);
    (void)release_.wait(30s);
    return 7;
  }

 private:
  RunCalls* calls_;
  Event release_;
  pid_t parent_;
};

// Destroyed through a base pointer: the non-daemon is waited for (its exit status comes from the
// override), the daemon is killed; run() is never called in the parent.
TEST(ProcessSubclassTest, DestroyingThroughTheBaseWaitsOrKillsAndNeverRunsInTheParent) {
  RunCalls* calls = run_calls();
  auto release = Event::anonymous();
  std::vector<std::unique_ptr<Process>> ps;
  ps.push_back(std::make_unique<Counted>(calls, release, getpid(), false));
  ps.push_back(std::make_unique<Counted>(calls, release, getpid(), true));
  for (auto& p : ps)
    p->start();
  const pid_t waited = ps[0]->pid(), killed = ps[1]->pid();
  while (calls->in_child.load() < 2)
    std::this_thread::sleep_for(1ms);
  std::thread releaser([release]() mutable {
    std::this_thread::sleep_for(100ms);
    release.set();
  });
  ps[1].reset();  // the daemon: killed, reaped
  ps[0].reset();  // waits until released, reaps
  releaser.join();
  EXPECT_EQ(waitpid(waited, nullptr, WNOHANG), -1);
  EXPECT_EQ(waitpid(killed, nullptr, WNOHANG), -1);
  EXPECT_EQ(calls->in_child.load(), 2);
  EXPECT_EQ(calls->in_parent.load(), 0);
}

TEST(ProcessSubclassTest, MovedSubclassKeepsItsRunAndASlicedOneFailsClearly) {
  auto q = Queue::anonymous({.capacity = 4, .max_message_bytes = 64});
  Worker w(q, 5, {.name = "moved"});
  Worker moved(std::move(w));
  Worker assigned(q, 0);
  assigned = std::move(moved);
  assigned.start();
  ASSERT_TRUE(assigned.join(10s));
  EXPECT_EQ(assigned.exitcode(), 5);
  EXPECT_EQ(q.get_value<std::string>(1s), "In moved (moved)");

  Worker s(q, 9);
  Process sliced(std::move(static_cast<Process&>(s)));  // Process's run(): no target
  // Refused in the parent, before any fork, saying why.
  try {
    sliced.start();
    ADD_FAILURE() << "a sliced Process started";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("loses its run()"), std::string::npos) << e.what();
  }
  EXPECT_EQ(sliced.pid(), 0);
}

// The callable constructor is unchanged: run() calls the target, also when called directly.
TEST(ProcessSubclassTest, TheDefaultRunCallsTheTarget) {
  Process p([] { return 4; });
  EXPECT_EQ(p.run(), 4);  // here, in this process
  p.start();
  ASSERT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), 4);
}

}  // namespace
}  // namespace mpt
