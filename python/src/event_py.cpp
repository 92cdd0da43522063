// mpthrottle.Event: a process-shared flag like multiprocessing.Event (mpt/event.hpp); also the
// type of Throttle.kill_flag.
#include "mpt/event.hpp"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "binding.hpp"
#include "mpt/segment.hpp"
#include "mpt/throttle.hpp"

namespace mpt_python {

// Event.wait(): the library's wait, cut into SignalWatch periods when Ctrl-C must be able to end
// it (the library's own wait does not return for signals).
bool wait_event(const mpt::Event& e, TimePoint deadline, const mpt::Interrupt* intr) {
  if (!intr) return e.wait_until(deadline);
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    const auto step = deadline - now > intr->period ? now + intr->period : deadline;
    if (e.wait_until(step)) return true;
    if (step == deadline || intr->check(intr->context)) return e.is_set();
  }
}

namespace {

mpt::Event create_event(const std::string& name, const mpt::CreateOptions& c) {
  mpt::Event e = mpt::Event::create(name, c);
  if (!c.persist) remove_at_exit(name, e.segment()->id());
  return e;
}

// What a pickled Event carries: the segment kind and name it lives in. The event of a throttle is
// its kill flag; an anonymous event (a RemoteThrottle's) cannot be reopened elsewhere.
py::tuple event_state(const mpt::Event& e) {
  const auto& seg = e.segment();
  if (!seg || seg->anonymous()) {
    throw py::type_error(
        "this Event has no name and cannot be pickled (pickle its RemoteThrottle instead)");
  }
  return py::make_tuple(seg->header().kind, seg->name());
}

mpt::Event event_from_state(const py::tuple& state) {
  if (state.size() != 2 || !py::isinstance<py::int_>(state[0]) ||
      !py::isinstance<py::str>(state[1])) {
    throw py::value_error("not a pickled mpthrottle.Event");
  }
  const auto kind = static_cast<mpt::SegmentKind>(state[0].cast<std::uint32_t>());
  const auto name = state[1].cast<std::string>();
  if (kind == mpt::SegmentKind::kThrottle) return mpt::Throttle::open(name).kill_flag();
  return mpt::Event::open(name);
}

}  // namespace

void bind_event(py::module_& m) {
  py::class_<mpt::Event>(m, "Event", R"doc(
A flag shared by processes, like multiprocessing.Event: set() wakes every process in wait().

Event() makes a new named event (picklable: a child process that unpickles it attaches the same
flag); Event.create(name) and Event.open(name) make and attach one by name, for processes that are
not related. The creating process removes the name when its last handle goes away.
Throttle.kill_flag is an Event too. Safe for concurrent use by threads and processes.
)doc")
      .def(py::init([] { return create_event(unique_name(), {}); }))
      .def_static(
          "create",
          [](const std::string& name, unsigned mode, bool persist) {
            return create_event(name, mpt::CreateOptions{static_cast<mode_t>(mode), persist});
          },
          py::arg("name"), py::kw_only(), py::arg("mode") = 0600, py::arg("persist") = false,
          "Creates the named event /dev/shm/mpt.<name> (clear). ExistsError if the name is taken.")
      .def_static(
          "open", [](const std::string& name) { return mpt::Event::open(name); }, py::arg("name"),
          "Attaches to the named event. NotFoundError if there is none.")
      .def("is_set", &mpt::Event::is_set, "True if the flag is set. Never blocks.")
      .def("set", &mpt::Event::set, "Sets the flag and wakes every waiter. Never blocks.")
      .def("clear", &mpt::Event::clear, "Clears the flag. Never blocks.")
      .def(
          "wait",
          [](const mpt::Event& e, std::optional<double> timeout) {
            const TimePoint deadline = deadline_after(timeout);
            return wait_without_gil(
                [&](const mpt::Interrupt* intr) { return wait_event(e, deadline, intr); });
          },
          py::arg("timeout") = py::none(), R"doc(
Blocks until the flag is set (returns True) or `timeout` seconds pass (returns False). None
waits for ever; 0 or less only looks. Releases the GIL; Ctrl-C interrupts it (KeyboardInterrupt).
)doc")
      .def_property_readonly(
          "name", [](const mpt::Event& e) { return e.segment() ? e.segment()->name() : ""; },
          "The name of the segment the flag lives in (a throttle's, for a kill_flag).")
      .def(py::pickle(&event_state, &event_from_state))
      .def("__repr__", [](const mpt::Event& e) {
        return std::string("<mpthrottle.Event ") + (e.is_set() ? "set" : "clear") + ">";
      });
}

}  // namespace mpt_python
