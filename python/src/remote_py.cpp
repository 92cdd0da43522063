// mpthrottle.RemoteThrottle and mpthrottle.connect(): mpt::RemoteThrottle (mpt/redis.hpp), a
// throttle kept in Redis for many hosts, with the same calls as Throttle. Every call that talks
// to the server releases the GIL.
//
// Pickling reconnects: the handle keeps the URL as given (with any password, never shown: url()
// and repr() show it without) and this process's settings, and the child connects to the same
// throttle with them. on_error is not carried over (a callable need not pickle).
#include "mpt/redis.hpp"

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>

#include "binding.hpp"

namespace mpt_python {

namespace {

using Seconds = std::chrono::duration<double>;

// This process's settings, as given to connect() (what a pickle carries).
struct LocalSettings {
  std::optional<double> spin_lead;
  std::string on_unavailable = "fail";
  std::int64_t fallback_divisor = 1;
  double connect_timeout = 0.5;
  double command_timeout = 0.5;
  double reconnect_backoff_max = 1.0;
  std::int64_t max_lease = mpt::RemoteOptions().max_lease;

  py::tuple to_tuple() const {
    return py::make_tuple(spin_lead, on_unavailable, fallback_divisor, connect_timeout,
                          command_timeout, reconnect_backoff_max, max_lease);
  }
  // 7 items; 6 from a module before max_lease (which then has its default).
  static LocalSettings from_tuple(const py::tuple& t) {
    if (t.size() != 6 && t.size() != 7) throw py::value_error("not a pickled RemoteThrottle");
    LocalSettings l{t[0].cast<std::optional<double>>(),
                    t[1].cast<std::string>(),
                    t[2].cast<std::int64_t>(),
                    t[3].cast<double>(),
                    t[4].cast<double>(),
                    t[5].cast<double>()};
    if (t.size() == 7) l.max_lease = t[6].cast<std::int64_t>();
    return l;
  }
};

struct PyRemote {
  mpt::RemoteThrottle t;
  std::string url;  // as given, password included: for pickling only
  LocalSettings local;
};

std::chrono::milliseconds to_ms(double s, const char* what) {
  // Out of the library's range (1 ms to 60 s) either way beyond this: it says so.
  const double ms = std::clamp(finite_seconds(s, what) * 1e3, -1e12, 1e12);
  return std::chrono::milliseconds(std::llround(ms));
}

mpt::OnUnavailable to_on_unavailable(const std::string& s) {
  using O = mpt::OnUnavailable;
  for (auto o : {O::kFail, O::kFailOpen, O::kFailClosed, O::kLocalFallback})
    if (s == mpt::to_string(o)) return o;
  throw py::value_error(
      "on_unavailable must be 'fail', 'fail_open', 'fail_closed' or 'local_fallback', got '" + s +
      "'");
}

bool python_exiting() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

// on_error runs on the thread that saw the failure, which holds no GIL; the function object
// itself is released with the GIL too. Neither takes the GIL once Python is exiting: a thread
// that takes it then is ended inside the library's noexcept calls (see without_gil).
std::function<void(const std::string&)> to_on_error(const py::object& f) {
  if (f.is_none()) return {};
  if (!PyCallable_Check(f.ptr())) throw py::type_error("on_error must be callable or None");
  std::shared_ptr<py::object> fn(new py::object(f), [](py::object* o) {
    if (python_exiting()) return;  // left to the process's end
    py::gil_scoped_acquire gil;
    delete o;
  });
  return [fn](const std::string& message) {
    if (python_exiting()) return;
    py::gil_scoped_acquire gil;
    try {
      (*fn)(message);
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable("mpthrottle.RemoteThrottle on_error");
    }
  };
}

mpt::RemoteOptions local_options(const LocalSettings& l) {
  mpt::RemoteOptions o;
  o.spin_lead = to_spin_lead(l.spin_lead);
  o.on_unavailable = to_on_unavailable(l.on_unavailable);
  o.fallback_divisor = l.fallback_divisor;
  o.connect_timeout = to_ms(l.connect_timeout, "connect_timeout");
  o.command_timeout = to_ms(l.command_timeout, "command_timeout");
  o.reconnect_backoff_max = to_ms(l.reconnect_backoff_max, "reconnect_backoff_max");
  o.max_lease = l.max_lease;  // the library checks the range
  return o;
}

PyRemote connect(const std::string& url, const py::object& max_n, double per, bool as_monitor,
                 bool as_throttle, std::optional<bool> auto_emit, const py::object& hardcap,
                 std::optional<double> correction, LocalSettings local,
                 const py::object& on_error) {
  mpt::RemoteOptions o = local_options(local);
  o.as_monitor = as_monitor;
  o.as_throttle = as_throttle;
  o.auto_emit = auto_emit.value_or(as_throttle);
  o.hardcap = to_hardcap(hardcap);
  o.correction = correction;
  o.on_error = to_on_error(on_error);
  const std::optional<std::int64_t> n =
      max_n.is_none() ? std::nullopt : std::optional(to_int64(max_n, "max_n"));
  auto t = without_gil([&] {
    return n ? mpt::RemoteThrottle::connect(url, *n, Seconds(per), o)
             : mpt::RemoteThrottle::connect(url, o);
  });
  return PyRemote{std::move(t), url, std::move(local)};
}

PyRemote from_state(const py::tuple& state) {
  if (state.size() != 2) throw py::value_error("not a pickled RemoteThrottle");
  const auto url = state[0].cast<std::string>();
  const LocalSettings local = LocalSettings::from_tuple(state[1].cast<py::tuple>());
  const mpt::RemoteOptions o = local_options(local);
  auto t = without_gil([&] { return mpt::RemoteThrottle::connect(url, o); });
  return PyRemote{std::move(t), url, local};
}

bool await_fuel(PyRemote& r, std::optional<double> timeout, std::int64_t n) {
  if (timeout && *timeout <= 0) {  // only looks, as Throttle.await_fuel (throttle_py.cpp)
    return without_gil([&] { return r.t.has_fuel(n); });
  }
  return await_fuel_as_seed(r.t, deadline_after(timeout), n);
}

py::object to_py(const mpt::Rate& r) {
  return to_tuple(r);
}
py::object to_py(const mpt::Summary& s) {
  return to_tuple(s);
}
py::object to_py(const mpt::Snapshot& s) {
  return to_dict(s);
}
py::object to_py(mpt::ThrottleState s) {
  return py::str(mpt::to_string(s));
}
template <class T>
py::object to_py(const T& v) {
  return py::cast(v);
}

// A method that makes a round trip: `f(throttle)` without the GIL, its result converted after.
template <class F>
auto round_trip(F f) {
  return [f](PyRemote& r) -> py::object {
    if constexpr (std::is_void_v<decltype(f(r.t))>) {
      without_gil([&] { f(r.t); });
      return py::none();
    } else {
      return to_py(without_gil([&] { return f(r.t); }));
    }
  };
}

void bind_calls(py::class_<PyRemote>& c) {
  using RT = mpt::RemoteThrottle;
  c.def("start", round_trip([](RT& t) { t.start(); }),
        "Starts (or restarts) the throttle on the server.");
  c.def("stop", round_trip([](RT& t) { return t.stop(); }),
        "Stops it (this process's kill_flag first) and returns (runtime, total, mean interval, "
        "mean rate).");
  c.def(
      "has_fuel",
      [](PyRemote& r, std::int64_t n) { return without_gil([&] { return r.t.has_fuel(n); }); },
      py::arg("n") = 1, "Takes n units if they are available now (one round trip).");
  c.def("await_fuel", &await_fuel, py::arg("t") = py::none(), py::arg("n") = 1, R"doc(
Blocks until n units are the caller's (True) or cannot be (False), like Throttle.await_fuel. Ctrl-C
raises KeyboardInterrupt within 0.1 s of the signal while it sleeps locally; a round trip in
progress first ends (within command_timeout).
)doc");
  c.def(
      "set_rate",
      [](PyRemote& r, std::int64_t max_n, double per) {
        without_gil([&] { r.t.set_rate(max_n, Seconds(per)); });
      },
      py::arg("max_n"), py::arg("per") = 1.0, "Changes the rate for every host.");
  c.def("emit", round_trip([](RT& t) { t.emit(); }), "Counts one emission (now).");
  c.def("release", round_trip([](RT& t) { t.release(); }), R"doc(
Reports this process's leased grants not yet reported and drops its lease (one round trip when
there is something to report). Never raises. The module calls it when a process ends.
)doc");
  c.def("available", round_trip([](RT& t) { return t.available(); }));
  c.def("latest", round_trip([](RT& t) { return t.latest(); }));
  c.def("mean", round_trip([](RT& t) { return t.mean(); }));
  c.def("lo_hi", round_trip([](RT& t) { return t.lo_hi(); }));
  c.def("hi_lo", round_trip([](RT& t) { return t.hi_lo(); }));
  c.def("total", round_trip([](RT& t) { return t.total(); }));
  c.def("snapshot", round_trip([](RT& t) { return t.snapshot(); }));
  c.def_property_readonly("state", round_trip([](RT& t) { return t.state(); }));
  c.def_property_readonly("running", round_trip([](RT& t) { return t.running(); }));
}

void bind_properties(py::class_<PyRemote>& c) {
  c.def_property_readonly(
      "kill_flag", [](const PyRemote& r) { return r.t.kill_flag(); },
      "This process's kill flag (an Event): stop() sets it, start() clears it.");
  c.def(
      "url", [](const PyRemote& r) { return r.t.url(); }, "The URL without the password.");
  c.def(
      "last_error", [](const PyRemote& r) { return without_gil([&] { return r.t.last_error(); }); },
      "Why the last call to the server failed ('' after a success).");
  c.def("round_trips",  // waits for a request another thread has in flight: without the GIL
        [](const PyRemote& r) { return without_gil([&] { return r.t.round_trips(); }); });
  c.def_property_readonly("name", [](const PyRemote& r) { return r.t.name(); });
  c.def_property_readonly("id", [](const PyRemote& r) { return r.t.id(); });
  c.def_property_readonly("interval",
                          [](const PyRemote& r) { return Seconds(r.t.interval()).count(); });
  c.def_property_readonly("spin_lead",
                          [](const PyRemote& r) { return Seconds(r.t.spin_lead()).count(); });
  c.def(py::pickle([](const PyRemote& r) { return py::make_tuple(r.url, r.local.to_tuple()); },
                   &from_state));
  c.def("__repr__",
        [](const PyRemote& r) { return "<mpthrottle.RemoteThrottle " + r.t.url() + ">"; });
}

}  // namespace

void bind_remote(py::module_& m) {
  py::class_<PyRemote> c(m, "RemoteThrottle", R"doc(
A throttle kept in Redis, shared by many hosts: the calls of Throttle, each a round trip to the
server. Made by mpthrottle.connect(). Pickling reconnects in the child (on_error is not carried).
)doc");
  bind_calls(c);
  bind_properties(c);
  m.def(
      "connect",
      [](const std::string& url, const py::object& max_n, double per, bool am, bool at,
         std::optional<bool> ae, const py::object& hc, std::optional<double> corr,
         std::optional<double> sl, const std::string& ou, std::int64_t fd, double ct, double cmd,
         double backoff, std::int64_t max_lease, const py::object& on_error) {
        return connect(url, max_n, per, am, at, ae, hc, corr,
                       LocalSettings{sl, ou, fd, ct, cmd, backoff, max_lease}, on_error);
      },
      py::arg("url"), py::arg("max_n") = py::none(), py::arg("per") = 1.0, py::kw_only(),
      py::arg("as_monitor") = true, py::arg("as_throttle") = true,
      py::arg("auto_emit") = py::none(), py::arg("hardcap") = "limit",
      py::arg("_correction") = py::none(), py::arg("spin_lead") = py::none(),
      py::arg("on_unavailable") = "fail", py::arg("fallback_divisor") = 1,
      py::arg("connect_timeout") = 0.5, py::arg("command_timeout") = 0.5,
      py::arg("reconnect_backoff_max") = 1.0, py::arg("max_lease") = LocalSettings().max_lease,
      py::arg("on_error") = py::none(), R"doc(
Connects to the throttle NAME at "redis://[[USER]:PASSWORD@]HOST[:PORT]/NAME". With max_n, creates
it at max_n per `per` seconds (and the keyword arguments of Throttle) if it does not exist; an
existing one keeps its stored settings. Without max_n, attaches to an existing one (RemoteError
if there is none). This process's settings: spin_lead, on_unavailable ('fail', 'fail_open',
'fail_closed', 'local_fallback'), fallback_divisor, connect_timeout, command_timeout and
reconnect_backoff_max (seconds), max_lease (the most slots one call may lease for this process,
1 to 4096; 1: one call per unit), on_error (called with a message when the server fails).
ValueError for a bad URL or argument; RemoteError when the server cannot be reached or refuses.
)doc");
}

}  // namespace mpt_python
