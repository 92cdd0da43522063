// SignalWatch (binding.hpp): Ctrl-C for waits that run without the GIL.
#include <pybind11/pybind11.h>

#include "binding.hpp"

namespace mpt_python {

namespace {

// threading.main_thread().ident == this thread's: the thread Python runs signal handlers on (after
// a fork, the thread that forked). Asked each time: it costs far less than any wait.
bool on_main_thread() {
  static py::object* main_thread =
      new py::object(py::module_::import("threading").attr("main_thread"));  // never freed
  const py::object ident = (*main_thread)().attr("ident");
  return !ident.is_none() && ident.cast<unsigned long>() == PyThread_get_thread_ident();
}

}  // namespace

SignalWatch::SignalWatch()
    : intr_{&SignalWatch::check, this, kPeriod}, main_thread_(on_main_thread()) {}

SignalWatch::~SignalWatch() {
  // Only where rethrow() was not reached (an exception in between): drop what was caught.
  Py_XDECREF(type_);
  Py_XDECREF(value_);
  Py_XDECREF(traceback_);
}

bool SignalWatch::check(void* self) noexcept {
  auto* w = static_cast<SignalWatch*>(self);
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() == 0) return false;
  PyErr_Fetch(&w->type_, &w->value_, &w->traceback_);
  return true;
}

void SignalWatch::rethrow() {
  if (!type_) return;
  PyErr_Restore(type_, value_, traceback_);
  type_ = value_ = traceback_ = nullptr;
  throw py::error_already_set();
}

}  // namespace mpt_python
