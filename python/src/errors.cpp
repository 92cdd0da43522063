// mpthrottle.Error and its subclasses; the library's exceptions become them with the C++ message.
//
//   Error                                     the base of everything below
//   NotFoundError(Error, FileNotFoundError)   no segment of that name
//   ExistsError(Error, FileExistsError)       the name is taken
//   PermissionDeniedError(Error, PermissionError)
//   IncompatibleError(Error)                  not an mpthrottle segment of that kind, or corrupt
//   SegmentError(Error, OSError)              any other operating-system failure
//   RemoteError(Error)                        the Redis backend (cannot connect, refused, ...)
// Bad arguments are ValueError (mpt::InvalidArgument derives from std::invalid_argument, which
// pybind11 turns into ValueError).
#include "mpt/error.hpp"

#include <pybind11/pybind11.h>

#include "binding.hpp"

namespace mpt_python {

namespace {

// The classes live as long as the module (strong references, never released).
PyObject* g_error = nullptr;
PyObject* g_not_found = nullptr;
PyObject* g_exists = nullptr;
PyObject* g_permission = nullptr;
PyObject* g_incompatible = nullptr;
PyObject* g_segment = nullptr;
PyObject* g_remote = nullptr;

PyObject* add_error(py::module_& m, const char* name, const char* doc, PyObject* os_base) {
  const std::string qualified = std::string("mpthrottle.") + name;
  py::tuple bases = os_base ? py::make_tuple(py::handle(g_error), py::handle(os_base))
                            : py::make_tuple(py::handle(g_error));
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), nullptr);
  if (!cls) throw py::error_already_set();
  m.add_object(name, py::handle(cls));
  return cls;
}

void translate(std::exception_ptr p) {
  try {
    std::rethrow_exception(p);
  } catch (const mpt::NotFound& e) {
    PyErr_SetString(g_not_found, e.what());
  } catch (const mpt::AlreadyExists& e) {
    PyErr_SetString(g_exists, e.what());
  } catch (const mpt::PermissionDenied& e) {
    PyErr_SetString(g_permission, e.what());
  } catch (const mpt::IncompatibleSegment& e) {
    PyErr_SetString(g_incompatible, e.what());
  } catch (const mpt::SegmentError& e) {
    PyErr_SetString(g_segment, e.what());
  } catch (const mpt::RemoteError& e) {
    PyErr_SetString(g_remote, e.what());
  }
}

}  // namespace

void register_errors(py::module_& m) {
  g_error = PyErr_NewExceptionWithDoc("mpthrottle.Error",
                                      "Base class of the errors mpthrottle raises (but "
                                      "ValueError for bad arguments).",
                                      PyExc_Exception, nullptr);
  if (!g_error) throw py::error_already_set();
  m.add_object("Error", py::handle(g_error));
  g_not_found = add_error(m, "NotFoundError", "No segment of that name.", PyExc_FileNotFoundError);
  g_exists =
      add_error(m, "ExistsError", "A segment of that name exists already.", PyExc_FileExistsError);
  g_permission = add_error(m, "PermissionDeniedError", "The segment's owner or mode forbids it.",
                           PyExc_PermissionError);
  g_incompatible = add_error(m, "IncompatibleError",
                             "Not an mpthrottle object of that kind, another ABI version, or "
                             "corrupt.",
                             nullptr);
  g_segment = add_error(m, "SegmentError",
                        "An operating-system failure while creating or attaching a segment.",
                        PyExc_OSError);
  g_remote = add_error(m, "RemoteError",
                       "The Redis backend failed: unreachable, no answer in time, refused "
                       "password, or keys of the wrong type.",
                       nullptr);
  py::register_exception_translator(&translate);
}

}  // namespace mpt_python
