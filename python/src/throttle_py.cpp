// mpthrottle.Throttle: mpt::Throttle (mpt/throttle.hpp) with the seed's (mp_throttle's) API.
//
// Every throttle made from Python has a name (Throttle(...) generates one), so that pickling
// carries only the name and unpickling attaches the same shared state, whatever the start method
// (fork, spawn, forkserver). The creating process unlinks the name when its last handle goes.
#include "mpt/throttle.hpp"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "binding.hpp"

namespace mpt_python {

namespace {

using Seconds = std::chrono::duration<double>;

// The seed's keyword arguments (and spin_lead), shared by Throttle() and Throttle.create(): `def`
// gets them as pybind11 argument descriptors, in this order.
template <class F>
void with_seed_kwargs(F&& def) {
  def(py::kw_only(), py::arg("as_monitor") = true, py::arg("as_throttle") = true,
      py::arg("auto_emit") = py::none(), py::arg("auto_calibrate") = py::none(),
      py::arg("_correction") = py::none(), py::arg("hardcap") = "limit", py::arg("rf_rate") = 0.01,
      py::arg("spin_lead") = py::none());
}

struct SeedArgs {
  std::int64_t max_n;
  Seconds per;
  mpt::ThrottleOptions options;
};

// max_n 0 (the seed's default) is allowed for a monitor that does not throttle; the library
// then gets a rate of 1 per `per`, which nothing uses.
SeedArgs seed_args(const py::object& max_n, double per, bool as_monitor, bool as_throttle,
                   std::optional<bool> auto_emit, std::optional<bool> auto_calibrate,
                   std::optional<double> correction, const py::object& hardcap, double rf_rate,
                   std::optional<double> spin_lead) {
  SeedArgs a{to_int64(max_n, "max_n"), Seconds(per), {}};
  if (a.max_n == 0 && !as_throttle) a.max_n = 1;
  a.options.as_monitor = as_monitor;
  a.options.as_throttle = as_throttle;
  a.options.auto_emit = auto_emit.value_or(as_throttle);
  a.options.auto_calibrate = auto_calibrate;
  a.options.correction = correction;
  a.options.hardcap = to_hardcap(hardcap);
  a.options.rf_rate = Seconds(rf_rate);
  a.options.spin_lead = to_spin_lead(spin_lead);
  return a;
}

mpt::Throttle make_named(const std::string& name, const SeedArgs& a, mpt::CreateOptions c = {}) {
  mpt::ThrottleOptions o = a.options;
  o.segment = c;
  mpt::Throttle t = mpt::Throttle::create(name, a.max_n, a.per, o);
  if (!c.persist) remove_at_exit(t.name(), t.id());
  return t;
}

bool await_fuel(mpt::Throttle& t, std::optional<double> timeout, std::int64_t n) {
  // A timeout of 0 or less is has_fuel(), as for the library's await_fuel(n, timeout): it never
  // waits, so it keeps the GIL.
  if (timeout && *timeout <= 0) return t.has_fuel(n);
  return await_fuel_as_seed(t, deadline_after(timeout), n);
}

std::optional<double> reserve(mpt::Throttle& t, std::int64_t n, std::optional<double> timeout) {
  const TimePoint now = std::chrono::steady_clock::now();  // once: the deadline counts from it
  const auto due = t.reserve(n, now, deadline_after(timeout, now));
  if (!due) return std::nullopt;
  return to_monotonic_seconds(*due);
}

std::string repr(const mpt::Throttle& t) {
  const mpt::Snapshot s = t.snapshot();
  return "<mpthrottle.Throttle '" + s.name + "': " + std::to_string(s.max_n) + " per " +
         std::string(py::str(py::float_(s.per_s))) + " s, hardcap " + mpt::to_string(s.hardcap) +
         ", " + mpt::to_string(s.state) + ">";
}

constexpr const char* kClassDoc = R"doc(
Throttle(max_n, per=1, **kwargs): a rate limit of max_n units of "fuel" per `per` seconds, shared
by every process and thread that holds it, and a monitor of the "emissions" they make.

The seed's (mp_throttle's) API:
    throttle = mpthrottle.Throttle(4, 1)       # 4 per second
    throttle.start()
    while not throttle.kill_flag.is_set():      # in each worker
        throttle.await_fuel()
        ...                                     # work
    runtime, total, mean_interval, mean_rate = throttle.stop()

Keyword arguments (the seed's, and spin_lead):
    as_monitor=True      count emissions (latest(), mean(), lo_hi(), hi_lo())
    as_throttle=True     limit the rate (False: a monitor only; await_fuel never waits)
    auto_emit=None       has_fuel()/await_fuel() count an emission per unit; default as_throttle
    auto_calibrate=None  load this host's correction (`mpt calibrate`); default: rate >= 49/s
    _correction=None     the slot interval is per/max_n * (1 - _correction), -1 < c < 1
    hardcap='limit'      'limit': bursts up to max_n; 'one': never more than max_n in any
                         window of `per`; 'none' (or None): unused fuel accumulates
    rf_rate=0.01         the monitor's bucket width in seconds (0.001 to 1)
    spin_lead=None       seconds before its slot a waiter stops sleeping and spins (0 to 0.01)

The throttle lives in shared memory under a generated name (see `name`); pickling it (a
multiprocessing Process or Pool initializer argument, with any start method) attaches the same
throttle in the child. Throttle.create(name, ...) and Throttle.open(name) share one by a name
of your choice between unrelated processes. The process that made it removes the name when its
last handle goes away.

Errors: ValueError for bad arguments; mpthrottle.Error subclasses (NotFoundError is a
FileNotFoundError, ...) for names. Safe for concurrent use by threads and processes.
)doc";

void bind_makers(py::class_<mpt::Throttle>& c) {
  with_seed_kwargs([&](auto&&... kw) {
    c.def(py::init([](const py::object& max_n, double per, bool am, bool at, std::optional<bool> ae,
                      std::optional<bool> ac, std::optional<double> corr, const py::object& hc,
                      double rf, std::optional<double> sl) {
            return make_named(unique_name(),
                              seed_args(max_n, per, am, at, ae, ac, corr, hc, rf, sl));
          }),
          py::arg("max_n") = 0, py::arg("per") = 1.0, kw...);
    c.def_static(
        "create",
        [](const std::string& name, const py::object& max_n, double per, bool am, bool at,
           std::optional<bool> ae, std::optional<bool> ac, std::optional<double> corr,
           const py::object& hc, double rf, std::optional<double> sl, unsigned mode, bool persist) {
          return make_named(name, seed_args(max_n, per, am, at, ae, ac, corr, hc, rf, sl),
                            mpt::CreateOptions{static_cast<mode_t>(mode), persist});
        },
        py::arg("name"), py::arg("max_n"), py::arg("per") = 1.0, kw..., py::arg("mode") = 0600,
        py::arg("persist") = false, R"doc(
Creates the named throttle /dev/shm/mpt.<name> (name: 1 to 200 of [A-Za-z0-9._-]), with the
keyword arguments of Throttle() and the file's mode; persist=True keeps the name after this
process's last handle goes (remove() it then). ExistsError if the name is taken.
)doc");
  });
  c.def_static(
      "open",
      [](const std::string& name, bool allow_other_owner, bool allow_world_writable) {
        return mpt::Throttle::open(name, mpt::OpenOptions{allow_other_owner, allow_world_writable});
      },
      py::arg("name"), py::kw_only(), py::arg("allow_other_owner") = false,
      py::arg("allow_world_writable") = false,
      "Attaches to the named throttle. NotFoundError if there is none; PermissionDeniedError "
      "for another user's or a world-writable one unless allowed.");
  c.def_static("remove", &mpt::Throttle::remove, py::arg("name"),
               "Removes the name of a named throttle; processes attached to it keep working.");
}

void bind_control(py::class_<mpt::Throttle>& c) {
  c.def(
      "start", [](mpt::Throttle& t) { without_gil([&] { t.start(); }); },
      "Starts (or restarts) the throttle: clears kill_flag, makes one unit available now.");
  c.def(
      "stop", [](mpt::Throttle& t) { return to_tuple(without_gil([&] { return t.stop(); })); },
      R"doc(
Stops the throttle: sets kill_flag, wakes every waiter (their await_fuel returns False) and
returns (runtime, total, mean interval, mean rate): seconds running, emissions counted, seconds
between emissions, emissions per second. The total is final. Never waits for the workers.
)doc");
  c.def(
      "set_rate",
      [](mpt::Throttle& t, std::int64_t max_n, double per) {
        without_gil([&] { t.set_rate(max_n, Seconds(per)); });
      },
      py::arg("max_n"), py::arg("per") = 1.0,
      "Changes the rate to max_n per `per` seconds while processes use it.");
  c.def_property_readonly("kill_flag", &mpt::Throttle::kill_flag,
                          "The Event that stop() sets and start() clears.");
}

void bind_fuel(py::class_<mpt::Throttle>& c) {
  // Bound straight to the member: the hot path has no Python-level wrapper.
  c.def("has_fuel",
        static_cast<bool (mpt::Throttle::*)(std::int64_t) noexcept>(&mpt::Throttle::has_fuel),
        py::arg("n") = 1, R"doc(
Takes n units if they are available now and returns True (counting n emissions when auto_emit);
otherwise takes nothing and returns False. Never blocks. False when not running.
)doc");
  c.def("await_fuel", &await_fuel, py::arg("t") = py::none(), py::arg("n") = 1, R"doc(
Blocks until n units are the caller's (True) or cannot be (False): the throttle was stopped, or
no unit comes within the timeout `t` (seconds; None waits for ever): then, as the seed's, it
returns False when `t` has passed (or at once when stop() ends the wait), taking nothing; 0 or
less only looks. Before start() it waits for the start. Releases the GIL while it waits;
Ctrl-C raises KeyboardInterrupt within 0.1 s (the unit it had reserved is then lost).
)doc");
  c.def("reserve", &reserve, py::arg("n") = 1, py::arg("timeout") = py::none(), R"doc(
Reserves n units without waiting and returns the time.monotonic() time at which they are due,
or None (taking nothing) if that is more than `timeout` seconds away or the throttle is not
running. Wait by your own means (asyncio.sleep), then call emit() if you count emissions.
)doc");
  c.def("available", py::overload_cast<>(&mpt::Throttle::available, py::const_),
        "Units that could be taken now without waiting (0 when not running).");
  c.def(
      "emit",
      [](mpt::Throttle& t, std::optional<double> ts) {
        if (ts) {
          t.emit(from_epoch_seconds(*ts));
        } else {
          t.emit();
        }
      },
      py::arg("timestamp") = py::none(),
      "Counts one emission, at `timestamp` (a time.time() value; default now). Never blocks.");
}

void bind_monitor(py::class_<mpt::Throttle>& c) {
  c.def(
      "latest", [](const mpt::Throttle& t) { return to_tuple(t.latest()); },
      "(seconds between emissions, emissions per second) over the last complete second.");
  c.def(
      "mean", [](const mpt::Throttle& t) { return to_tuple(t.mean()); },
      "(mean seconds between emissions, mean emissions per second) over the runtime.");
  c.def(
      "lo_hi", [](const mpt::Throttle& t) { return to_tuple(t.lo_hi()); },
      "(shortest seconds between two emissions, the highest rate it gives).");
  c.def(
      "hi_lo", [](const mpt::Throttle& t) { return to_tuple(t.hi_lo()); },
      "(longest seconds between two emissions, the lowest rate it gives).");
  c.def("total", &mpt::Throttle::total, "Emissions counted, over every start/stop cycle.");
  c.def(
      "snapshot", [](const mpt::Throttle& t) { return to_dict(t.snapshot()); },
      "Everything at once, as a dict (the fields of `mpt stat`).");
  c.def_property_readonly(
      "state", [](const mpt::Throttle& t) { return mpt::to_string(t.state()); },
      "'created', 'running' or 'stopped'.");
  c.def_property_readonly("running", &mpt::Throttle::running);
  c.def_property_readonly("name", &mpt::Throttle::name, "The name Throttle.open() attaches by.");
  c.def_property_readonly("id", &mpt::Throttle::id, "The segment's id (the probes' throttle_id).");
  c.def_property_readonly(
      "max_n", [](const mpt::Throttle& t) { return t.snapshot().max_n; }, "Units per `per`.");
  c.def_property_readonly(
      "per", [](const mpt::Throttle& t) { return t.snapshot().per_s; }, "Seconds.");
  c.def_property_readonly(
      "hardcap", [](const mpt::Throttle& t) { return mpt::to_string(t.snapshot().hardcap); },
      "'limit', 'one' or 'none'.");
  c.def_property_readonly(
      "interval", [](const mpt::Throttle& t) { return Seconds(t.interval()).count(); },
      "Seconds between slots, correction applied.");
  c.def_property_readonly(
      "spin_lead", [](const mpt::Throttle& t) { return Seconds(t.spin_lead()).count(); },
      "Seconds before its slot a waiter stops sleeping and spins.");
}

}  // namespace

void bind_throttle(py::module_& m) {
  py::class_<mpt::Throttle> c(m, "Throttle", kClassDoc);
  bind_makers(c);
  bind_control(c);
  bind_fuel(c);
  bind_monitor(c);
  c.def(py::pickle([](const mpt::Throttle& t) { return py::make_tuple(t.name()); },
                   [](const py::tuple& state) {
                     if (state.size() != 1 || !py::isinstance<py::str>(state[0]))
                       throw py::value_error("not a pickled Throttle");
                     return mpt::Throttle::open(state[0].cast<std::string>());
                   }));
  c.def("__repr__", &repr);
  m.def("remove", &mpt::Throttle::remove, py::arg("name"),
        "Removes the name of a named throttle (Throttle.remove).");
}

}  // namespace mpt_python
