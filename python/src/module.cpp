// The extension module mpthrottle._mpthrottle (python/mpthrottle/__init__.py re-exports it).
#include <pybind11/pybind11.h>

#include "binding.hpp"

PYBIND11_MODULE(_mpthrottle, m) {
  m.doc() =
      "mpthrottle: shared-memory rate limiting for many processes (the C++ engine of the "
      "package mpthrottle; import mpthrottle, not this).";
  mpt_python::register_errors(m);
  mpt_python::bind_event(m);
  mpt_python::bind_throttle(m);
  mpt_python::bind_remote(m);
  mpt_python::bind_dict(m);
  mpt_python::register_exit_cleanup(m);
}
