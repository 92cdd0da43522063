/* mpt/mpt.h — the C ABI of mpthrottle, for C and for any language with a C FFI (Python ctypes).
 *
 * An mpt_throttle* is an opaque handle on a Throttle (see mpt/throttle.hpp for the semantics).
 * Handles are made by mpt_throttle_create(), mpt_throttle_open() or
 * mpt_throttle_create_anonymous() and released by mpt_throttle_close(). An anonymous throttle is
 * shared with the child processes forked after it was made; a named one (/dev/shm/mpt.<name>) is
 * attached by name from any process of the same user, and the creating process unlinks the name
 * when it closes its handle (unless options.persist).
 *
 * Errors: functions that can fail return an mpt_error (MPT_OK is 0); every mpt::ErrorCode has the
 * code of the same number here, and MPT_E_NO_MEMORY and MPT_E_UNKNOWN are this ABI's own (no
 * ErrorCode has 7 or 8). mpt_strerror() names a code and mpt_last_error() gives the message of the
 * last failure on the calling thread (it names the segment). No C++ exception crosses this
 * boundary.
 *
 * Thread and process safety: like the C++ API. The hot path (has_fuel, await_fuel, emit) never
 * allocates and is safe for concurrent use by threads and processes. Closing a handle while
 * another thread uses it is undefined.
 */
#ifndef MPT_MPT_H
#define MPT_MPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpt_throttle mpt_throttle;

typedef enum mpt_error {
  MPT_OK = 0,
  MPT_E_INVALID_ARGUMENT = 1, /* bad configuration or name, NULL handle */
  MPT_E_NOT_FOUND = 2,
  MPT_E_ALREADY_EXISTS = 3,
  MPT_E_PERMISSION_DENIED = 4,
  MPT_E_INCOMPATIBLE = 5, /* wrong magic, ABI version, kind or size; truncated or corrupt */
  MPT_E_SYSTEM = 6,       /* any other operating-system failure */
  MPT_E_NO_MEMORY = 7,
  MPT_E_UNKNOWN = 8,
  MPT_E_UNAVAILABLE = 9 /* a remote backend (Redis) cannot be reached or did not answer in time */
} mpt_error;

typedef enum mpt_hardcap {
  MPT_HARDCAP_LIMIT = 0, /* burst up to max_n (default) */
  MPT_HARDCAP_ONE = 1,   /* burst 1: never more than max_n in any window of `per` */
  MPT_HARDCAP_NONE = 2   /* unused fuel accumulates */
} mpt_hardcap;

typedef enum mpt_state { MPT_CREATED = 0, MPT_RUNNING = 1, MPT_STOPPED = 2 } mpt_state;

/* Options for the create functions. Fill with mpt_options_init() first, then change fields. */
typedef struct mpt_options {
  int32_t hardcap;        /* mpt_hardcap */
  int32_t as_monitor;     /* 1 (default) or 0 */
  int32_t as_throttle;    /* 1 (default) or 0 */
  int32_t auto_emit;      /* 1 (default) or 0 */
  int32_t auto_calibrate; /* -1: default (on for rates >= 49/s), 0 off, 1 on */
  int32_t has_correction; /* 1: use `correction` */
  double correction;      /* slot interval is per/max_n * (1 - correction); -1 < c < 1 */
  double rf_rate_s;       /* monitor bucket width, 0.001 to 1 s; default 0.01 */
  int64_t spin_lead_ns;   /* -1: default */
  uint32_t mode;          /* file mode of a named segment; default 0600 */
  int32_t persist;        /* 1: keep the name after the creator closes its handle */
} mpt_options;

/* (seconds between emissions, emissions per second); both 0 when there is nothing to measure. */
typedef struct mpt_rate {
  double interval_s;
  double rate_per_sec;
} mpt_rate;

/* What mpt_throttle_stop() returns, in the seed's order. */
typedef struct mpt_summary {
  double runtime_s;
  uint64_t total;
  double mean_interval_s;
  double mean_rate_per_sec;
} mpt_summary;

#define MPT_NAME_CAPACITY 256

typedef struct mpt_snapshot {
  uint64_t id;
  char name[MPT_NAME_CAPACITY]; /* "" when anonymous; NUL-terminated */
  int64_t max_n;
  double per_s;
  int32_t hardcap; /* mpt_hardcap */
  int32_t state;   /* mpt_state */
  int32_t as_monitor;
  int32_t as_throttle;
  int32_t auto_emit;
  int32_t auto_calibrate;
  double rf_rate_s;
  int64_t interval_ns;
  double correction;
  int64_t spin_lead_ns;
  int64_t available;
  uint64_t total;
  double runtime_s;
  mpt_rate latest;
  mpt_rate mean;
  mpt_rate lo_hi;
  mpt_rate hi_lo;
  int32_t creator_pid;
  int32_t reserved0;
  int64_t created_realtime_ns;
} mpt_snapshot;

/* Defaults, as ThrottleOptions{}. */
void mpt_options_init(mpt_options* options);

/* Create or attach. `options` may be NULL (defaults). On success *out is a new handle. */
mpt_error mpt_throttle_create(const char* name, int64_t max_n, double per_s,
                              const mpt_options* options, mpt_throttle** out);
mpt_error mpt_throttle_create_anonymous(int64_t max_n, double per_s, const mpt_options* options,
                                        mpt_throttle** out);
mpt_error mpt_throttle_open(const char* name, mpt_throttle** out);
/* Releases the handle (NULL is allowed). The creator of a named throttle unlinks its name. */
void mpt_throttle_close(mpt_throttle* throttle);
/* Unlinks a named throttle; attached processes keep working. */
mpt_error mpt_throttle_remove(const char* name);

/* Starts (or restarts) the throttle: clears the kill flag and makes one unit available. */
mpt_error mpt_throttle_start(mpt_throttle* throttle);
/* Sets the kill flag, wakes every waiter, and fills *summary (may be NULL). */
mpt_error mpt_throttle_stop(mpt_throttle* throttle, mpt_summary* summary);
mpt_error mpt_throttle_set_rate(mpt_throttle* throttle, int64_t max_n, double per_s);

/* Never blocks. 1 if n units were taken, 0 if not (or the handle is NULL, or n < 1). */
int mpt_throttle_has_fuel(mpt_throttle* throttle, int64_t n);
/* Blocks until n units are the caller's (1) or cannot be (0: stopped, the timeout cannot be met,
 * n < 1, NULL handle). timeout_ns < 0 waits forever; 0 is has_fuel. */
int mpt_throttle_await_fuel(mpt_throttle* throttle, int64_t n, int64_t timeout_ns);
/* Counts one emission now. Never blocks. */
void mpt_throttle_emit(mpt_throttle* throttle);
/* 1 when the kill flag (set by stop) is set: workers loop `while (!mpt_throttle_killed(t))`. */
int mpt_throttle_killed(const mpt_throttle* throttle);
int mpt_throttle_state(const mpt_throttle* throttle); /* mpt_state; -1 for NULL */
uint64_t mpt_throttle_id(const mpt_throttle* throttle);
uint64_t mpt_throttle_total(const mpt_throttle* throttle);
mpt_error mpt_throttle_snapshot(const mpt_throttle* throttle, mpt_snapshot* out);

/* "not found", ...: a static string, never NULL. */
const char* mpt_strerror(int code);
/* The message of the last failure on this thread ("" if none). Valid until the next call that
 * fails on this thread. */
const char* mpt_last_error(void);
/* The library's version, "MAJOR.MINOR.PATCH". */
const char* mpt_version(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MPT_MPT_H */
