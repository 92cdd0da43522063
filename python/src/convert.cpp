// Arguments in and results out (binding.hpp).
#include <pybind11/pybind11.h>
#include <sys/random.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "binding.hpp"

namespace mpt_python {

std::int64_t to_int64(const py::handle& v, const char* what) {
  if (!PyLong_Check(v.ptr()) || PyBool_Check(v.ptr())) {
    throw py::type_error(std::string(what) + " must be an int, got " +
                         std::string(py::str(py::type::of(v).attr("__name__"))));
  }
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
  if (overflow != 0) {
    throw py::value_error(std::string(what) + " is out of range: " + std::string(py::repr(v)));
  }
  if (x == -1 && PyErr_Occurred()) throw py::error_already_set();
  return x;
}

double finite_seconds(double s, const char* what) {
  if (!std::isfinite(s)) {
    throw py::value_error(std::string(what) + " must be a finite number of seconds, got " +
                          std::string(py::repr(py::float_(s))));
  }
  return s;
}

TimePoint deadline_after(std::optional<double> timeout_s) {
  return deadline_after(timeout_s, std::chrono::steady_clock::now());
}

TimePoint deadline_after(std::optional<double> timeout_s, TimePoint now) {
  if (!timeout_s) return TimePoint::max();
  if (std::isnan(*timeout_s)) throw py::value_error("timeout must be a number of seconds, not NaN");
  const double ns = std::max(*timeout_s, 0.0) * 1e9;
  // Beyond about 290 years from now the sum would overflow: that is for ever.
  const double room = static_cast<double>((TimePoint::max() - now).count());
  if (ns >= room) return TimePoint::max();
  return now + std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

std::optional<std::chrono::nanoseconds> to_spin_lead(std::optional<double> s) {
  if (!s) return std::nullopt;
  const double ns = finite_seconds(*s, "spin_lead") * 1e9;
  // Out of the library's range (0 to 10 ms) either way: it says so, in nanoseconds.
  if (ns > 1e18 || ns < -1e18) return std::chrono::nanoseconds(ns > 0 ? INT64_MAX : INT64_MIN);
  return std::chrono::nanoseconds(std::llround(ns));
}

mpt::Hardcap to_hardcap(const py::handle& v) {
  if (v.is_none()) return mpt::Hardcap::kNone;
  if (py::isinstance<py::str>(v)) {
    const std::string s = v.cast<std::string>();
    for (auto h : {mpt::Hardcap::kLimit, mpt::Hardcap::kOne, mpt::Hardcap::kNone})
      if (s == mpt::to_string(h)) return h;
  }
  throw py::value_error("hardcap must be 'limit', 'one' or 'none' (or None), got " +
                        std::string(py::repr(v)));
}

TimePoint from_epoch_seconds(double ts) {
  if (!std::isfinite(ts)) throw py::value_error("timestamp must be a finite time.time() value");
  const auto real_now = std::chrono::system_clock::now();
  const auto mono_now = std::chrono::steady_clock::now();
  const double ago_s = std::chrono::duration<double>(real_now.time_since_epoch()).count() - ts;
  // Clamped to +-100 years: far out of the monitor's range either way, and no overflow.
  const double ago_ns = std::clamp(ago_s * 1e9, -3.2e18, 3.2e18);
  return mono_now - std::chrono::nanoseconds(static_cast<std::int64_t>(ago_ns));
}

double to_monotonic_seconds(TimePoint t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

py::tuple to_tuple(const mpt::Rate& r) {
  return py::make_tuple(r.interval_s, r.rate_per_sec);
}

py::tuple to_tuple(const mpt::Summary& s) {
  return py::make_tuple(s.runtime.count(), s.total, s.mean_interval_s, s.mean_rate_per_sec);
}

py::dict to_dict(const mpt::Snapshot& s) {
  py::dict d;
  d["id"] = s.id;
  d["name"] = s.name;
  d["max_n"] = s.max_n;
  d["per_s"] = s.per_s;
  d["hardcap"] = mpt::to_string(s.hardcap);
  d["as_monitor"] = s.as_monitor;
  d["as_throttle"] = s.as_throttle;
  d["auto_emit"] = s.auto_emit;
  d["auto_calibrate"] = s.auto_calibrate;
  d["rf_rate_s"] = s.rf_rate_s;
  d["interval_ns"] = s.interval_ns;
  d["correction"] = s.correction;
  d["correction_source"] = s.correction_source;
  d["spin_lead_ns"] = s.spin_lead_ns;
  d["state"] = mpt::to_string(s.state);
  d["available"] = s.available;
  d["total"] = s.total;
  d["runtime_s"] = s.runtime_s;
  d["latest"] = to_tuple(s.latest);
  d["mean"] = to_tuple(s.mean);
  d["lo_hi"] = to_tuple(s.lo_hi);
  d["hi_lo"] = to_tuple(s.hi_lo);
  d["creator_pid"] = s.creator_pid;
  d["created_realtime_ns"] = s.created_realtime_ns;
  return d;
}

std::string unique_name() {
  std::uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) {
    r = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "py.%d.%016llx", static_cast<int>(getpid()),
                static_cast<unsigned long long>(r));
  return buf;
}

}  // namespace mpt_python
