// The PyMOTW "multiprocessing" topics in C++, one subcommand each.
//
// Usage: mp_pymotw TOPIC
//   simple     five workers print "Worker"                  (Process objects)
//   names      the current process's name in each line      (Determining the Current Process)
//   daemon     a daemon and a non-daemon child               (Daemon Processes)
//   join       join with a timeout                           (Waiting for Processes)
//   exitcodes  exit status, exception, terminate(), kill()  (Process Exit Status)
//   event      a child waits for an Event                    (Signaling between Processes)
//   lock       workers print under a Lock                    (Controlling access with Lock)
//   condition  stage 2 waits for stage 1                     (Synchronizing with a Condition)
//   semaphore  at most 2 of 5 workers at once                (Controlling concurrent access)
//   map        Pool.map squares a list                       (Pool.map)
//   mapreduce  word count with map_reduce                    (Map/Reduce)
//   subclass   five Worker subclasses print their names      (Subclassing Process)
//   logging    log_to_stderr at DEBUG, then INFO, then a hook (Logging)
//   comprehension  a Pool over lazy ranges with imap         (Parallel Evaluation of a List
//                                                             Comprehension)
//   manager    ten workers fill a shared dict; a shared record (Manager, Shared Namespaces)
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mpt/event.hpp"
#include "mpt/log.hpp"
#include "mpt/pool.hpp"
#include "mpt/process.hpp"
#include "mpt/shared_dict.hpp"
#include "mpt/shared_record.hpp"
#include "mpt/sync.hpp"

using namespace std::chrono_literals;

namespace {

void say(const char* what) {
  std::printf("%-12s %s\n", mpt::current_process_name().c_str(), what);
  std::fflush(stdout);
}

int simple() {
  std::vector<mpt::Process> jobs;
  for (int i = 0; i < 5; ++i)
    jobs.emplace_back([i] { std::printf("Worker: %d\n", i); });
  for (auto& j : jobs)
    j.start();
  for (auto& j : jobs)
    j.join();
  return 0;
}

int names() {
  auto worker = [] {
    say("Starting");
    std::this_thread::sleep_for(200ms);
    say("Exiting");
  };
  mpt::Process service(
      [] {
        say("Starting");
        std::this_thread::sleep_for(300ms);
        say("Exiting");
      },
      {.name = "my_service"});
  mpt::Process w1(worker, {.name = "worker 1"});
  mpt::Process w2(worker);  // default name: Process-3
  w1.start();
  w2.start();
  service.start();
  w1.join();
  w2.join();
  service.join();
  return 0;
}

int daemon() {
  mpt::Process d(
      [] {
        say("Starting");
        std::this_thread::sleep_for(2s);
        say("Exiting");  // never printed: the parent exits first and takes the daemon with it
      },
      {.name = "daemon", .daemon = true});
  mpt::Process n(
      [] {
        say("Starting");
        say("Exiting");
      },
      {.name = "non-daemon"});
  d.start();
  std::this_thread::sleep_for(100ms);
  n.start();
  n.join();
  std::printf("daemon pid %d still alive: %s; exiting without joining it\n", d.pid(),
              d.is_alive() ? "yes" : "no");
  std::fflush(stdout);
  _exit(0);  // like Python's interpreter exit: the daemon dies with us (PR_SET_PDEATHSIG)
}

int join() {
  mpt::Process d(
      [] {
        say("Starting");
        std::this_thread::sleep_for(2s);
        say("Exiting");
      },
      {.name = "daemon", .daemon = true});
  d.start();
  const bool done = d.join(1s);
  std::printf("joined: %s, d.is_alive(): %s\n", done ? "yes" : "no", d.is_alive() ? "yes" : "no");
  d.join();
  std::printf("after join(): exitcode %d\n", *d.exitcode());
  return 0;
}

int exitcodes() {
  mpt::Process ok([] {}, {.name = "exit_ok"});
  mpt::Process error([] { return 1; }, {.name = "exit_error"});
  mpt::Process raises([] { throw std::runtime_error("raises"); }, {.name = "exception"});
  mpt::Process terminated([] { std::this_thread::sleep_for(10s); }, {.name = "terminated"});
  mpt::Process killed([] { std::this_thread::sleep_for(10s); }, {.name = "killed"});
  std::vector<mpt::Process*> all{&ok, &error, &raises, &terminated, &killed};
  for (auto* p : all)
    p->start();
  std::this_thread::sleep_for(100ms);
  terminated.terminate();
  killed.kill();
  for (auto* p : all) {
    p->join();
    std::printf("%-12s exitcode = %3d  (%s)\n", p->name().c_str(), *p->exitcode(),
                mpt::describe_exitcode(*p->exitcode()).c_str());
  }
  return 0;
}

int event() {
  auto e = mpt::Event::anonymous();
  mpt::Process block(
      [e] {
        say("wait_for_event: starting");
        e.wait();
        say("wait_for_event: e.is_set() -> true");
      },
      {.name = "block"});
  mpt::Process timeout(
      [e] {
        say("wait_for_event_timeout: starting");
        const bool set = e.wait(100ms);
        say(set ? "wait_for_event_timeout: e.is_set() -> true"
                : "wait_for_event_timeout: e.is_set() -> false");
      },
      {.name = "nonblock"});
  block.start();
  timeout.start();
  std::this_thread::sleep_for(300ms);
  e.set();
  say("main: event is set");
  block.join();
  timeout.join();
  return 0;
}

int lock() {
  auto l = mpt::Lock::anonymous();
  std::vector<mpt::Process> ps;
  ps.emplace_back([l]() mutable {
    mpt::LockGuard g(l);
    say("Lock acquired via LockGuard");
  });
  ps.emplace_back([l]() mutable {
    (void)l.lock();
    say("Lock acquired directly");
    l.unlock();
  });
  // A process that dies holding the lock: the next locker is told and the lock stays usable.
  ps.emplace_back([l]() mutable {
    (void)l.lock();
    say("dies holding the lock");
    std::fflush(stdout);
    raise(SIGKILL);
  });
  for (auto& p : ps) {
    p.start();
    p.join();
  }
  mpt::LockGuard g(l);
  std::printf("main: lock taken, previous owner died: %s\n", g.recovered() ? "yes" : "no");
  return 0;
}

int condition() {
  auto c = mpt::Condition::anonymous();
  auto ready = mpt::Event::anonymous();  // stage 1 is done (the predicate, in shared memory)
  auto stage_2 = [c, ready]() mutable {
    say("Starting stage_2");
    (void)c.lock();
    c.wait_for([&] { return ready.is_set(); }, 10s);
    say("stage_2 running");
    c.unlock();
  };
  mpt::Process s1(
      [c, ready]() mutable {
        say("Starting stage_1");
        (void)c.lock();
        say("stage_1 done and ready for stage_2");
        ready.set();
        c.notify_all();
        c.unlock();
      },
      {.name = "s1"});
  mpt::Process a(stage_2, {.name = "stage_2[1]"}), b(stage_2, {.name = "stage_2[2]"});
  a.start();
  b.start();
  std::this_thread::sleep_for(200ms);
  s1.start();
  s1.join();
  a.join();
  b.join();
  return 0;
}

int semaphore() {
  auto s = mpt::Semaphore::anonymous(2);
  std::vector<mpt::Process> ps;
  for (int i = 0; i < 5; ++i)
    ps.emplace_back([s]() mutable {
      s.acquire();
      say("working (at most 2 at once)");
      std::this_thread::sleep_for(100ms);
      s.release();
    });
  for (auto& p : ps)
    p.start();
  for (auto& p : ps)
    p.join();
  return 0;
}

int do_calculation(int data) {
  return data * 2;
}

int map() {
  mpt::Pool pool(2, [] { say("Starting"); });
  std::vector<int> inputs(10);
  std::iota(inputs.begin(), inputs.end(), 0);
  const auto outputs = pool.map(&do_calculation, inputs);
  std::printf("Input  :");
  for (int x : inputs)
    std::printf(" %d", x);
  std::printf("\nOutput :");
  for (int x : outputs)
    std::printf(" %d", x);
  std::printf("\n");
  pool.close();  // as the seed: no more tasks, then wait for the workers to finish
  pool.join();
  return 0;
}

int mapreduce() {
  const std::vector<std::string> lines = {"the quick brown fox", "jumps over the lazy dog",
                                          "the dog barks"};
  mpt::Pool pool(2);
  auto counts = mpt::map_reduce(
      pool, lines,
      +[](std::string line) {  // map: (word, 1) for each word
        std::vector<std::pair<std::string, int>> out;
        std::size_t a = 0;
        while (a < line.size()) {
          std::size_t b = line.find(' ', a);
          if (b == std::string::npos) b = line.size();
          if (b > a) out.emplace_back(line.substr(a, b - a), 1);
          a = b + 1;
        }
        return out;
      },
      +[](std::pair<std::string, std::vector<int>> kv) {  // reduce: sum per word
        return std::make_pair(kv.first, std::accumulate(kv.second.begin(), kv.second.end(), 0));
      });
  std::printf("TOP WORDS BY FREQUENCY\n");
  for (const auto& [word, n] : counts)
    std::printf("%-8s: %d\n", word.c_str(), n);
  return 0;
}

// The seed's Worker: a Process subclass whose run() says where it runs.
class Worker : public mpt::Process {
 public:
  Worker() : Process({}, "Worker") {}
  int run() override {
    std::printf("In %s\n", name().c_str());
    return 0;
  }
};

int subclass() {
  std::vector<Worker> jobs(5);
  for (auto& j : jobs)
    j.start();
  for (auto& j : jobs)
    j.join();
  return 0;
}

int logging() {
  auto worker = [] {
    std::printf("Doing some work\n");
    std::fflush(stdout);
    mpt::log_debug("done with the work");
  };
  // log_to_stderr(logging.DEBUG): the library's INFO records about the child, and the worker's.
  mpt::log_to_stderr(mpt::LogLevel::kDebug);
  mpt::Process p(worker);
  p.start();
  p.join();
  // get_logger().setLevel(logging.INFO): the DEBUG record is dropped.
  mpt::set_log_level(mpt::LogLevel::kInfo);
  mpt::Process q(worker);
  q.start();
  q.join();
  // A hook: the user's logger receives the records (here, it prints them to stdout).
  mpt::set_log_sink(
      [](mpt::LogLevel level, std::string_view process, pid_t pid, std::string_view message) {
        std::printf("my logger: %s from %.*s (pid %d): %.*s\n", mpt::log_level_name(level).c_str(),
                    static_cast<int>(process.size()), process.data(), static_cast<int>(pid),
                    static_cast<int>(message.size()), message.data());
      });
  mpt::Process r(worker);
  r.start();
  r.join();
  mpt::log_info("main: done");
  return 0;
}

void print_list(const char* label, auto&& values) {
  std::printf("%s:", label);
  for (int x : values)
    std::printf(" %d", x);
  std::printf("\n");
}

int comprehension() {
  // [do_calculation(x) for x in range(10)]: the inputs are a lazy range, never a list.
  auto inputs = std::views::iota(0, 10);
  print_list("Input   ", inputs);
  print_list("Built-in", inputs | std::views::transform(do_calculation));
  mpt::Pool pool(2, [] { say("Starting"); });
  std::vector<int> outputs;
  pool.imap(&do_calculation, inputs, [&](int r) { outputs.push_back(r); });
  print_list("Pool    ", outputs);
  // An endless generator: pulled only as fast as results are taken, stopped by the consumer.
  int next = 0, pulled = 0;
  std::vector<int> first;
  pool.imap(
      &do_calculation,
      [&]() -> std::optional<int> {
        ++pulled;
        return next++;
      },
      [&](int r) {
        first.push_back(r);
        return first.size() < 10;
      });
  print_list("Endless ", first);
  std::printf("pulled %d items of the endless source for 10 results\n", pulled);
  pool.close();  // as the seed: no more tasks, then wait for the workers to finish
  pool.join();
  return 0;
}

// Python's Manager().dict() is served by a process of its own; here the dictionary lives in
// shared memory and each worker writes its entry directly. The entries are printed in key order
// (a Python dict keeps insertion order, which racing workers make arbitrary anyway).
int manager() {
  auto d = mpt::SharedDict<int, int>::anonymous({.capacity = 16});
  std::vector<mpt::Process> jobs;
  for (int i = 0; i < 10; ++i)
    jobs.emplace_back([&d, i] { d.set(i, i * 2); });
  for (auto& j : jobs)
    j.start();
  for (auto& j : jobs)
    j.join();
  auto items = d.items();
  std::sort(items.begin(), items.end());
  std::string out;
  for (const auto& [k, v] : items)
    out += (out.empty() ? "" : ", ") + std::to_string(k) + ": " + std::to_string(v);
  std::printf("Results: {%s}\n", out.c_str());

  // The Namespace: a producer fills in a field and sets an event; a consumer reads the field
  // before and after the event.
  struct Namespace {
    std::atomic<bool> has_value;
    char value[32];
  };
  auto ns = mpt::SharedRecord<Namespace>::anonymous();
  auto ready = mpt::Event::anonymous();
  mpt::Process producer([&] {
    std::strcpy(ns->value, "This is the value");
    ns->has_value.store(true);
    ready.set();
  });
  mpt::Process consumer([&] {
    std::printf("Before event, consumer got: %s\n",
                ns->has_value.load() ? ns->value : "no value yet");
    ready.wait();
    std::printf("After event, consumer got: %s\n", ns->value);
  });
  consumer.start();
  consumer.join(50ms);  // let the consumer look first, as the seed's sleep does
  producer.start();
  producer.join();
  consumer.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, int (*)()> topics = {
      {"simple", simple},       {"names", names},
      {"daemon", daemon},       {"join", join},
      {"exitcodes", exitcodes}, {"event", event},
      {"lock", lock},           {"condition", condition},
      {"semaphore", semaphore}, {"map", map},
      {"mapreduce", mapreduce}, {"subclass", subclass},
      {"logging", logging},     {"comprehension", comprehension},
      {"manager", manager}};
  setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line, so parent and children interleave in order
  auto it = argc == 2 ? topics.find(argv[1]) : topics.end();
  if (it == topics.end()) {
    std::fprintf(stderr, "usage: mp_pymotw TOPIC\ntopics:");
    for (const auto& t : topics)
      std::fprintf(stderr, " %s", t.first.c_str());
    std::fprintf(stderr, "\n");
    return 2;
  }
  try {
    return it->second();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mp_pymotw %s: %s\n", argv[1], e.what());
    return 1;
  }
}
