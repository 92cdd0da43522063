// Internal to the Python binding (python/src): what its files share. The module is
// mpthrottle._mpthrottle; python/mpthrottle/__init__.py re-exports it.
//
// Units at the edge: Python gives and gets seconds as floats (timeouts, per, rf_rate, spin_lead)
// and times as time.monotonic() or time.time() floats; the library takes std::chrono.
// The GIL: calls that can wait (await_fuel, Event.wait, stop, every Redis round trip) release it;
// the ones that never block (has_fuel on a local throttle, emit, the monitor) keep it, because
// releasing it would cost more than the call.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>

#include "mpt/monitor.hpp"
#include "mpt/throttle_like.hpp"

namespace mpt_python {

namespace py = pybind11;
using TimePoint = std::chrono::steady_clock::time_point;

// errors.cpp: mpthrottle.Error and its subclasses, and the translation of the library's
// exceptions into them (ValueError for mpt::InvalidArgument is pybind11's own).
void register_errors(py::module_& m);

// convert.cpp: arguments in, results out.
// An int argument as int64: TypeError for anything but an int (bool included), ValueError when it
// does not fit.
std::int64_t to_int64(const py::handle& v, const char* what);
// A number of seconds that must be finite (ValueError naming `what` otherwise).
double finite_seconds(double s, const char* what);
// A timeout in seconds: None waits for ever (TimePoint::max()), as does one too large to
// represent; a negative one is zero; NaN is a ValueError.
TimePoint deadline_after(std::optional<double> timeout_s);
TimePoint deadline_after(std::optional<double> timeout_s, TimePoint now);
// spin_lead in seconds (None: the default) as nanoseconds; the library checks the range.
std::optional<std::chrono::nanoseconds> to_spin_lead(std::optional<double> s);
// 'limit', 'one', 'none' or None; ValueError naming the three for anything else.
mpt::Hardcap to_hardcap(const py::handle& v);
// emit(timestamp): a time.time() float as a steady_clock time point.
TimePoint from_epoch_seconds(double ts);
double to_monotonic_seconds(TimePoint t);
py::tuple to_tuple(const mpt::Rate& r);
py::tuple to_tuple(const mpt::Summary& s);
py::dict to_dict(const mpt::Snapshot& s);
// A fresh name for an object made without one: "py.<pid>.<16 random hex digits>".
std::string unique_name();

// cleanup.cpp: `name` (the segment `id`), created by this process, is removed when Python exits
// if it still names that segment, even where a handle is never freed (see cleanup.cpp).
void remove_at_exit(const std::string& name, std::uint64_t id);
void register_exit_cleanup(py::module_& m);

// interrupt.cpp: waits without the GIL that Ctrl-C ends.
//
// SignalWatch, made with the GIL held just before a wait, gives the wait an mpt::Interrupt when
// this is the main thread (the only one that runs Python's signal handlers): on each wake (at
// least every kPeriod) its check takes the GIL and runs the pending handlers; one that raises
// (KeyboardInterrupt from SIGINT) ends the wait, and rethrow() raises it again after the wait,
// with the GIL. Other threads wait without it (taking the GIL there would also be unsafe while the
// interpreter shuts down).
class SignalWatch {
 public:
  static constexpr std::chrono::milliseconds kPeriod{50};
  SignalWatch();
  ~SignalWatch();
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;
  const mpt::Interrupt* interrupt() const noexcept { return main_thread_ ? &intr_ : nullptr; }
  // With the GIL: raises what a signal handler raised during the wait, if anything.
  void rethrow();
  // Whether a handler raised during the wait (on the waiting thread, without the GIL).
  bool fired() const noexcept { return type_ != nullptr; }

 private:
  static bool check(void* self) noexcept;
  mpt::Interrupt intr_;
  bool main_thread_;
  PyObject* type_ = nullptr;
  PyObject* value_ = nullptr;
  PyObject* traceback_ = nullptr;
};

// Runs f() without the GIL and returns its result (or throws what it threw). Not pybind11's
// gil_scoped_release: a daemon thread that retakes the GIL while Python exits is ended there
// (pthread_exit), and that unwinding may not pass through a destructor, which is noexcept
// (std::terminate: "terminate called without an active exception" at exit). From a plain
// function it passes.
template <class F>
auto without_gil(F&& f) {
  using R = decltype(f());
  PyThreadState* state = PyEval_SaveThread();
  std::exception_ptr error;
  if constexpr (std::is_void_v<R>) {
    try {
      f();
    } catch (...) {
      error = std::current_exception();
    }
    PyEval_RestoreThread(state);
    if (error) std::rethrow_exception(error);
  } else {
    std::optional<R> result;
    try {
      result.emplace(f());
    } catch (...) {
      error = std::current_exception();
    }
    PyEval_RestoreThread(state);
    if (error) std::rethrow_exception(error);
    return std::move(*result);
  }
}

// Runs wait(const mpt::Interrupt*) without the GIL (see SignalWatch) and returns its result.
template <class F>
auto wait_without_gil(F&& wait) {
  SignalWatch watch;
  auto result = without_gil([&] { return wait(watch.interrupt()); });
  watch.rethrow();
  return result;
}

// event_py.cpp: Event.wait()'s wait, cut into the interrupt's periods when there is one.
bool wait_event(const mpt::Event& e, TimePoint deadline, const mpt::Interrupt* intr);

// await_fuel(t) as the seed's, a queue's get(timeout=t): the library refuses at once a slot that
// comes after the deadline; refused while the throttle runs, this waits out the timeout on the
// kill flag (stop() and Ctrl-C end it), so that a loop on await_fuel(0.5) does not spin.
template <class T>
bool await_fuel_as_seed(T& t, TimePoint deadline, std::int64_t n) {
  SignalWatch watch;
  const bool got = without_gil([&] {
    const mpt::Interrupt* intr = watch.interrupt();
    if ((intr ? t.await_grant(deadline, n, *intr) : t.await_grant(deadline, n))) return true;
    if (deadline != TimePoint::max() && !watch.fired() && t.running())
      wait_event(t.kill_flag(), deadline, intr);
    return false;
  });
  watch.rethrow();
  return got;
}

// The classes, one file each.
void bind_event(py::module_& m);
void bind_throttle(py::module_& m);
void bind_remote(py::module_& m);
void bind_dict(py::module_& m);

}  // namespace mpt_python
