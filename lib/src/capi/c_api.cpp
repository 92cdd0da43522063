// lib/src/c_api.cpp — the C ABI (mpt/mpt.h) over mpt::Throttle. Every entry point catches every
// exception: failures become an mpt_error plus a thread-local message.
#include "mpt/mpt.h"

#include <cstring>
#include <new>
#include <optional>
#include <string>

#include "mpt/error.hpp"
#include "mpt/throttle.hpp"

#ifndef MPT_VERSION_STRING
#define MPT_VERSION_STRING "0.0.0"
#endif

namespace {

// The C code of every mpt::ErrorCode. A switch without a default: an ErrorCode added without a C
// code here fails the build (-Wswitch, with MPT_WERROR).
constexpr mpt_error to_c(mpt::ErrorCode code) noexcept {
  switch (code) {
    case mpt::ErrorCode::kInvalidArgument:
      return MPT_E_INVALID_ARGUMENT;
    case mpt::ErrorCode::kNotFound:
      return MPT_E_NOT_FOUND;
    case mpt::ErrorCode::kAlreadyExists:
      return MPT_E_ALREADY_EXISTS;
    case mpt::ErrorCode::kPermissionDenied:
      return MPT_E_PERMISSION_DENIED;
    case mpt::ErrorCode::kIncompatible:
      return MPT_E_INCOMPATIBLE;
    case mpt::ErrorCode::kSystem:
      return MPT_E_SYSTEM;
    case mpt::ErrorCode::kUnavailable:
      return MPT_E_UNAVAILABLE;
  }
  return MPT_E_UNKNOWN;
}

// ... with the same number on both sides, as mpt.h promises, and none of the C ABI's own codes
// (MPT_E_NO_MEMORY and MPT_E_UNKNOWN were published with their numbers before kUnavailable).
constexpr bool mirrored(mpt::ErrorCode code) noexcept {
  const mpt_error c = to_c(code);
  return static_cast<int>(c) == static_cast<int>(code) && c != MPT_OK && c != MPT_E_NO_MEMORY &&
         c != MPT_E_UNKNOWN;
}

}  // namespace

static_assert(mirrored(mpt::ErrorCode::kInvalidArgument));
static_assert(mirrored(mpt::ErrorCode::kNotFound));
static_assert(mirrored(mpt::ErrorCode::kAlreadyExists));
static_assert(mirrored(mpt::ErrorCode::kPermissionDenied));
static_assert(mirrored(mpt::ErrorCode::kIncompatible));
static_assert(mirrored(mpt::ErrorCode::kSystem));
static_assert(mirrored(mpt::ErrorCode::kUnavailable));
static_assert(MPT_OK == 0 && MPT_E_NO_MEMORY == 7 &&
              MPT_E_UNKNOWN == 8);  // published; never renumber
static_assert(MPT_HARDCAP_LIMIT == static_cast<int>(mpt::Hardcap::kLimit));
static_assert(MPT_HARDCAP_ONE == static_cast<int>(mpt::Hardcap::kOne));
static_assert(MPT_HARDCAP_NONE == static_cast<int>(mpt::Hardcap::kNone));
static_assert(MPT_CREATED == static_cast<int>(mpt::ThrottleState::kCreated));
static_assert(MPT_RUNNING == static_cast<int>(mpt::ThrottleState::kRunning));
static_assert(MPT_STOPPED == static_cast<int>(mpt::ThrottleState::kStopped));

struct mpt_throttle {
  mpt::Throttle throttle;
  mpt::Event kill_flag;
};

namespace {

thread_local std::string t_last_error;

mpt_error fail(mpt_error code, const char* what) noexcept {
  try {
    t_last_error = what;
  } catch (...) {
    // keep the previous message; the code still says what happened
  }
  return code;
}

// Maps the exception being handled to an mpt_error. Call only inside a catch block.
mpt_error fail_current() noexcept {
  try {
    throw;
  } catch (const mpt::SegmentError& e) {
    return fail(to_c(e.code()), e.what());
  } catch (const mpt::RemoteError& e) {
    return fail(to_c(e.code()), e.what());
  } catch (const mpt::InvalidArgument& e) {
    return fail(MPT_E_INVALID_ARGUMENT, e.what());
  } catch (const std::invalid_argument& e) {
    return fail(MPT_E_INVALID_ARGUMENT, e.what());
  } catch (const std::bad_alloc&) {
    return fail(MPT_E_NO_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(MPT_E_UNKNOWN, e.what());
  } catch (...) {
    return fail(MPT_E_UNKNOWN, "unknown error");
  }
}

mpt::ThrottleOptions to_options(const mpt_options* o) {
  mpt::ThrottleOptions out;
  if (!o) return out;
  switch (o->hardcap) {
    case MPT_HARDCAP_LIMIT:
      out.hardcap = mpt::Hardcap::kLimit;
      break;
    case MPT_HARDCAP_ONE:
      out.hardcap = mpt::Hardcap::kOne;
      break;
    case MPT_HARDCAP_NONE:
      out.hardcap = mpt::Hardcap::kNone;
      break;
    default:
      throw mpt::InvalidArgument("hardcap " + std::to_string(o->hardcap) +
                                 " is not MPT_HARDCAP_LIMIT, _ONE or _NONE");
  }
  out.as_monitor = o->as_monitor != 0;
  out.as_throttle = o->as_throttle != 0;
  out.auto_emit = o->auto_emit != 0;
  if (o->auto_calibrate >= 0) out.auto_calibrate = o->auto_calibrate != 0;
  if (o->has_correction) out.correction = o->correction;
  out.rf_rate = std::chrono::duration<double>(o->rf_rate_s);
  if (o->spin_lead_ns >= 0) out.spin_lead = std::chrono::nanoseconds(o->spin_lead_ns);
  out.segment.mode = static_cast<mode_t>(o->mode);
  out.segment.persist = o->persist != 0;
  return out;
}

mpt_error wrap(mpt::Throttle&& t, mpt_throttle** out) {
  auto kill = t.kill_flag();
  *out = new mpt_throttle{std::move(t), std::move(kill)};
  return MPT_OK;
}

mpt_rate to_c(const mpt::Rate& r) noexcept {
  return mpt_rate{r.interval_s, r.rate_per_sec};
}

}  // namespace

extern "C" {

void mpt_options_init(mpt_options* o) {
  if (!o) return;
  const mpt::ThrottleOptions d;
  o->hardcap = static_cast<int32_t>(d.hardcap);
  o->as_monitor = d.as_monitor;
  o->as_throttle = d.as_throttle;
  o->auto_emit = d.auto_emit;
  o->auto_calibrate = -1;
  o->has_correction = 0;
  o->correction = 0;
  o->rf_rate_s = d.rf_rate.count();
  o->spin_lead_ns = -1;
  o->mode = d.segment.mode;
  o->persist = d.segment.persist;
}

mpt_error mpt_throttle_create(const char* name, int64_t max_n, double per_s,
                              const mpt_options* options, mpt_throttle** out) {
  if (!out) return fail(MPT_E_INVALID_ARGUMENT, "mpt_throttle_create: out is NULL");
  *out = nullptr;
  if (!name) return fail(MPT_E_INVALID_ARGUMENT, "mpt_throttle_create: name is NULL");
  try {
    return wrap(mpt::Throttle::create(name, max_n, std::chrono::duration<double>(per_s),
                                      to_options(options)),
                out);
  } catch (...) {
    return fail_current();
  }
}

mpt_error mpt_throttle_create_anonymous(int64_t max_n, double per_s, const mpt_options* options,
                                        mpt_throttle** out) {
  if (!out) return fail(MPT_E_INVALID_ARGUMENT, "mpt_throttle_create_anonymous: out is NULL");
  *out = nullptr;
  try {
    return wrap(mpt::Throttle(max_n, std::chrono::duration<double>(per_s), to_options(options)),
                out);
  } catch (...) {
    return fail_current();
  }
}

mpt_error mpt_throttle_open(const char* name, mpt_throttle** out) {
  if (!out) return fail(MPT_E_INVALID_ARGUMENT, "mpt_throttle_open: out is NULL");
  *out = nullptr;
  if (!name) return fail(MPT_E_INVALID_ARGUMENT, "mpt_throttle_open: name is NULL");
  try {
    return wrap(mpt::Throttle::open(name), out);
  } catch (...) {
    return fail_current();
  }
}

void mpt_throttle_close(mpt_throttle* t) {
  delete t;
}

mpt_error mpt_throttle_remove(const char* name) {
  if (!name) return fail(MPT_E_INVALID_ARGUMENT, "mpt_throttle_remove: name is NULL");
  try {
    mpt::Throttle::remove(name);
    return MPT_OK;
  } catch (...) {
    return fail_current();
  }
}

mpt_error mpt_throttle_start(mpt_throttle* t) {
  if (!t) return fail(MPT_E_INVALID_ARGUMENT, "mpt_throttle_start: throttle is NULL");
  try {
    t->throttle.start();
    return MPT_OK;
  } catch (...) {
    return fail_current();
  }
}

mpt_error mpt_throttle_stop(mpt_throttle* t, mpt_summary* summary) {
  if (!t) return fail(MPT_E_INVALID_ARGUMENT, "mpt_throttle_stop: throttle is NULL");
  try {
    const mpt::Summary s = t->throttle.stop();
    if (summary) {
      summary->runtime_s = s.runtime.count();
      summary->total = s.total;
      summary->mean_interval_s = s.mean_interval_s;
      summary->mean_rate_per_sec = s.mean_rate_per_sec;
    }
    return MPT_OK;
  } catch (...) {
    return fail_current();
  }
}

mpt_error mpt_throttle_set_rate(mpt_throttle* t, int64_t max_n, double per_s) {
  if (!t) return fail(MPT_E_INVALID_ARGUMENT, "mpt_throttle_set_rate: throttle is NULL");
  try {
    t->throttle.set_rate(max_n, std::chrono::duration<double>(per_s));
    return MPT_OK;
  } catch (...) {
    return fail_current();
  }
}

int mpt_throttle_has_fuel(mpt_throttle* t, int64_t n) {
  return t && t->throttle.has_fuel(n) ? 1 : 0;
}

int mpt_throttle_await_fuel(mpt_throttle* t, int64_t n, int64_t timeout_ns) {
  if (!t) return 0;
  std::optional<std::chrono::nanoseconds> timeout;
  if (timeout_ns >= 0) timeout = std::chrono::nanoseconds(timeout_ns);
  return t->throttle.await_fuel(n, timeout) ? 1 : 0;
}

void mpt_throttle_emit(mpt_throttle* t) {
  if (t) t->throttle.emit();
}

int mpt_throttle_killed(const mpt_throttle* t) {
  return t && t->kill_flag.is_set() ? 1 : 0;
}

int mpt_throttle_state(const mpt_throttle* t) {
  return t ? static_cast<int>(t->throttle.state()) : -1;
}

uint64_t mpt_throttle_id(const mpt_throttle* t) {
  return t ? t->throttle.id() : 0;
}

uint64_t mpt_throttle_total(const mpt_throttle* t) {
  return t ? t->throttle.total() : 0;
}

mpt_error mpt_throttle_snapshot(const mpt_throttle* t, mpt_snapshot* out) {
  if (!t || !out) return fail(MPT_E_INVALID_ARGUMENT, "mpt_throttle_snapshot: NULL argument");
  try {
    const mpt::Snapshot s = t->throttle.snapshot();
    std::memset(out, 0, sizeof *out);
    out->id = s.id;
    std::strncpy(out->name, s.name.c_str(), MPT_NAME_CAPACITY - 1);
    out->max_n = s.max_n;
    out->per_s = s.per_s;
    out->hardcap = static_cast<int32_t>(s.hardcap);
    out->state = static_cast<int32_t>(s.state);
    out->as_monitor = s.as_monitor;
    out->as_throttle = s.as_throttle;
    out->auto_emit = s.auto_emit;
    out->auto_calibrate = s.auto_calibrate;
    out->rf_rate_s = s.rf_rate_s;
    out->interval_ns = s.interval_ns;
    out->correction = s.correction;
    out->spin_lead_ns = s.spin_lead_ns;
    out->available = s.available;
    out->total = s.total;
    out->runtime_s = s.runtime_s;
    out->latest = to_c(s.latest);
    out->mean = to_c(s.mean);
    out->lo_hi = to_c(s.lo_hi);
    out->hi_lo = to_c(s.hi_lo);
    out->creator_pid = s.creator_pid;
    out->created_realtime_ns = s.created_realtime_ns;
    return MPT_OK;
  } catch (...) {
    return fail_current();
  }
}

const char* mpt_strerror(int code) {
  switch (code) {
    case MPT_OK:
      return "success";
    case MPT_E_NO_MEMORY:
      return "out of memory";
    case MPT_E_UNKNOWN:
      return "unknown error";
    default:
      if ((code >= MPT_E_INVALID_ARGUMENT && code <= MPT_E_SYSTEM) || code == MPT_E_UNAVAILABLE)
        return mpt::to_string(static_cast<mpt::ErrorCode>(code));
      return "unknown error";
  }
}

const char* mpt_last_error(void) {
  return t_last_error.c_str();
}

const char* mpt_version(void) {
  return MPT_VERSION_STRING;
}

}  // extern "C"
