// remove_at_exit() (binding.hpp): the names this process created, unlinked when Python exits.
//
// A segment's name goes when its creator drops its last handle (mpt::Segment's destructor). At
// exit Python does not always drop them: an object referenced by a daemon thread's frame, or by
// a reference cycle, is never freed. Every handle of this process is going away then, so the
// names it made (and did not ask to keep) are removed by an atexit hook, each only if the file
// still holds the segment this process made (its id), never a namesake made since.
#include <pybind11/pybind11.h>
#include <unistd.h>

#include <mutex>
#include <vector>

#include "binding.hpp"
#include "mpt/segment.hpp"

namespace mpt_python {

namespace {

struct Created {
  std::string name;
  std::uint64_t id;
  pid_t pid;
};

std::mutex g_mutex;
std::vector<Created>* g_created = new std::vector<Created>;  // never freed: used at exit

void remove_created() {
  std::lock_guard lock(g_mutex);
  for (const Created& c : *g_created) {
    if (c.pid != getpid()) continue;  // a forked child's copy of the list
    const mpt::SegmentInfo info = mpt::Segment::inspect(c.name);
    if (!info.valid || info.id != c.id) continue;  // gone already, or another's
    try {
      mpt::Segment::remove(c.name);
    } catch (const std::exception&) {  // removed meanwhile: nothing to do
    }
  }
  g_created->clear();
}

}  // namespace

void remove_at_exit(const std::string& name, std::uint64_t id) {
  std::lock_guard lock(g_mutex);
  // Names whose segment has gone are dropped as new ones come, so the list stays short.
  std::erase_if(*g_created, [](const Created& c) {
    return c.pid == getpid() && !mpt::Segment::inspect(c.name).valid;
  });
  g_created->push_back({name, id, getpid()});
}

void register_exit_cleanup(py::module_& m) {
  m.def("_remove_created", &remove_created,
        "Removes the names this process created (run by atexit).");
  py::module_::import("atexit").attr("register")(m.attr("_remove_created"));
}

}  // namespace mpt_python
