// Internal: RemoteThrottle::Impl, the Redis backend behind mpt::RemoteThrottle (mpt/redis.hpp).
//
// One hash per throttle, `mpt:{NAME}:throttle`, holds the configuration (max_n, per_s, hardcap,
// interval, tau, flags, id, creator), the state (created/running/stopped, run generation, start
// time, accumulated runtime), the GCRA word (tat_us) and the monitor's counters (total, last
// emission, shortest and longest interval). Per-second emission counts live in
// `mpt:{NAME}:sec:<unix second>` keys that expire after 10 s. The `{NAME}` hash tag keeps every
// key of a throttle in one cluster slot.
//
// Every operation is one call of one Lua script, throttle.lua (EVALSHA; the script is loaded once
// per server with SCRIPT LOAD, again after a NOSCRIPT reply). Times in the script are microseconds
// on the server's clock (`TIME`), relative to the throttle's creation (`base_us`) so that doubles
// keep sub-microsecond precision; replies that are times are relative (mpt/redis.hpp says why).
//
// Emissions are counted when a unit is granted, at its slot, not when the slot is reserved: a
// reservation for a later slot waits in the sorted set `mpt:{NAME}:pending` (score: the slot;
// member: "RUN SEQ N") and every call of the script first counts the units whose slots have come
// ("settle"). stop() settles up to its own time and leaves the rest uncounted for good; a process
// whose kill flag is set while it sleeps until its slot asks the server ("chk") whether the slot
// came first (granted, counted) or not (given up, never counted).
//
// The connection is redis_conn.hpp's: every connection attempt (name resolution included) is
// bounded by connect_timeout, every request by command_timeout, and a caught signal ends either.
//
// Copies of a RemoteThrottle share one Impl; a process forked after connect() notices (getpid) and
// opens its own connection. A mutex serialises the round trips of threads of one process. Never
// throws on the hot path (has_fuel, acquire, emit, the accessors); the administrative calls throw
// RemoteError. The files, by job:
//   url.cpp              the URL (redis_url.hpp)
//   remote_conn.cpp      connecting, requests, retries and backoff, errors, the hash made and read
//   remote_acquire.cpp   the hot path: has_fuel, acquire, reserve, emit, outages
//   remote_admin.cpp     start, stop, set_rate, the snapshot and the accessors built on it
//   remote_throttle.cpp  the public class: connect(), and each call handed to the Impl
//   remote_api.cpp       the options checked, the await_fuel forms (also in the MPT_REDIS=OFF
//                        build, with remote_stub.cpp)
//   throttle.lua         the script, built in as detail::kThrottleScript (script.hpp)
// The local fallback (a Throttle at rate / fallback_divisor) is used through its public API only:
// its kill flag is this process's, its spin lead the waiters', its schedule kLocalFallback's.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mpt/error.hpp"
#include "mpt/redis.hpp"
#include "mpt/throttle.hpp"
#include "redis_conn.hpp"
#include "redis_url.hpp"

namespace mpt::detail {

// set_redis_clock_offset_for_testing()
// A test seam for tests/redis, declared only here (an internal header: no public header has it,
// and nothing reads it from the environment): the remote throttles this process connects afterwards
// see CLOCK_MONOTONIC + offset, as a host whose clock is skewed against the others'. 0 unless a
// test sets it. Safe for concurrent use; throttles connected before the call keep their offset.
void set_redis_clock_offset_for_testing(std::chrono::nanoseconds offset) noexcept;

// What the throttle's hash stores (and a connecting client adopts).
struct RemoteConfig {
  std::int64_t max_n = 0;
  double per_s = 0;
  Hardcap hardcap = Hardcap::kLimit;
  double correction = 0;
  bool correction_given = false;
  bool as_monitor = true;
  bool as_throttle = true;
  bool auto_emit = true;
  std::uint64_t id = 0;
  std::int32_t creator_pid = 0;
  std::string creator_host;
  std::int64_t created_realtime_ns = 0;
  ThrottleState state = ThrottleState::kCreated;
};

// The slot interval and burst tolerance the server's GCRA uses, in microseconds (tau < 0:
// unbounded). hardcap one: per / max_n with no correction, tau 0.
double remote_interval_us(const RemoteConfig& c);
double remote_tau_us(const RemoteConfig& c, double interval_us);

// Reading the script's replies (remote_conn.cpp). Missing or malformed values read as `dflt`.
using Fields = std::vector<std::pair<std::string, std::string>>;  // a hash, as HGETALL gives it
std::string reply_str(const redisReply* r);
std::int64_t reply_int(const redisReply* r);
Fields reply_pairs(const redisReply* r);
std::string get_or(const Fields& kv, const char* k, const std::string& dflt = "");
double to_d(const std::string& s, double dflt = 0);
ThrottleState parse_state(const std::string& s);
std::string fmt17(double v);  // "%.17g": a double the script reads back exactly

}  // namespace mpt::detail

namespace mpt {

class RemoteThrottle::Impl {
 public:
  // Connects and creates the throttle from `create`, or adopts the stored one (create null: it
  // must exist). Throws RemoteError / InvalidArgument.
  Impl(detail::RedisUrl url, const RemoteOptions& options, const detail::RemoteConfig* create);
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // The local throttle at rate / k: the kill flag and spin lead of this process, and the
  // kLocalFallback schedule. Set once, by connect(), before the handle is shared.
  void set_fallback(Throttle fallback);
  const Throttle& fallback() const noexcept { return *fallback_; }
  const detail::RemoteConfig& config() const noexcept { return cfg_; }
  std::string url() const { return url_.display(); }
  const std::string& name() const noexcept { return url_.name; }

  // Hot path. acquire() returns the CLOCK_MONOTONIC grant time, or -1.
  bool has_fuel(std::int64_t n) noexcept;
  std::int64_t acquire(std::int64_t deadline_ns, std::int64_t n,
                       const Interrupt* intr = nullptr) noexcept;
  std::optional<std::int64_t> reserve(std::int64_t n, std::int64_t now_ns,
                                      std::int64_t deadline_ns) noexcept;
  void emit(std::int64_t timestamp_ns) noexcept;
  void release() noexcept;  // RemoteThrottle::release(): report, and drop the lease

  // Administration: throw RemoteError when the server cannot do it.
  void start();
  Summary stop();
  void set_rate(std::int64_t max_n, double per_s);
  Snapshot snapshot();

  // Accessors: one round trip each; the last values seen when the server cannot be reached.
  ThrottleState state() noexcept;
  std::int64_t available() noexcept;
  Rate latest() noexcept;
  Rate mean() noexcept;
  Rate lo_hi() noexcept;
  Rate hi_lo() noexcept;
  std::uint64_t total() noexcept;
  std::int64_t interval_ns() const noexcept { return interval_ns_.load(std::memory_order_relaxed); }
  std::uint64_t id() const noexcept { return cfg_.id; }

  std::string last_error() const;
  std::uint64_t round_trips() const noexcept;

  // The raw reply of the snapshot operation, parsed.
  struct Stats {
    double now_us = 0;  // server time, relative to base
    std::int64_t prev_second = 0;
    detail::RemoteConfig cfg;
    double interval_us = 0, tau_us = 0, tat_us = 0, started_us = 0, runtime_us = 0;
    double last_us = -1, min_us = -1, max_us = -1;
    std::uint64_t total = 0;
  };

 private:
  // kInterrupted: a signal ended the request; the hot path returns false whatever on_unavailable
  // says, and nothing backs off.
  enum class Fail { kNone, kUnavailable, kError, kInterrupted };
  struct Outcome {
    detail::ReplyPtr reply;
    Fail fail = Fail::kNone;
    ErrorCode code = ErrorCode::kUnavailable;
    std::string error;
    explicit operator bool() const noexcept { return fail == Fail::kNone; }
  };
  struct Acq {
    // 1 granted, 0 denied (deadline), -1 created, -2 stopped, -3 gone; 2: a lease was installed
    // (or another thread's is there): take a slot from it
    int status = 0;
    std::int64_t due_in_ns = 0;
    std::int64_t t_send = 0, t_recv = 0;  // local clock around the round trip
    Fail fail = Fail::kNone;
    std::string member;  // the reservation in mpt:{NAME}:pending; empty when counted (or not) now
  };

  // Leases (remote_acquire.cpp): k consecutive slots for this process, from one call.
  struct LeaseRec {  // a lease's slots this process granted and has not reported yet
    std::string gen, s0,
        iv;  // the run, the first slot, the interval (us), as the server wrote them
    std::vector<std::pair<std::int64_t, std::int64_t>> ranges;  // granted slot indexes, A..B
    int inflight = 0;                                           // claimed, not granted or lost yet
  };
  struct Lease {
    std::shared_ptr<LeaseRec> rec;  // null: no lease
    std::int64_t s0_local = 0;      // slot 0 on this host's clock (the latest it can be)
    std::int64_t recv_local = 0;    // when the lease came: slots before it count from there
    double iv_ns = 0;
    std::int64_t grace_ns = 0;  // a slot passed by more than this (tau) is lost
    std::int64_t k = 0, next = 0;
  };
  struct Claim {
    std::shared_ptr<LeaseRec> rec;  // set: slot `index`, due at `slot` (local clock)
    std::int64_t index = 0, slot = 0;
    bool beyond = false;  // the lease's next slot is after the deadline: nothing taken
  };
  bool leases_for(std::int64_t n) const noexcept;
  std::int64_t lease_size() noexcept;
  void own_leases_locked() noexcept;
  Claim claim_leased(std::int64_t deadline_local) noexcept;
  std::int64_t grant_leased(const Claim& c, const Interrupt* intr) noexcept;
  bool record_grant(const Claim& c) noexcept;
  void install_lease(const redisReply* r, std::int64_t t_recv);
  std::string take_report();
  void ack_report() noexcept;
  void drop_lease() noexcept;
  void flush_report(bool only_if_connected = false) noexcept;
  std::int64_t grant_reserved(const Acq& a, const Interrupt* intr) noexcept;

  // Hot path (remote_acquire.cpp).
  std::int64_t now_local() const noexcept;
  bool kill_set() const noexcept;
  void stop_fallback() noexcept;
  enum class Woke { kReached, kKilled, kInterrupted };
  Woke sleep_until_local(std::int64_t due_local, const Interrupt* intr) noexcept;
  bool wait_for_retry(std::int64_t deadline_local, const Interrupt* intr) noexcept;
  Acq call_acquire(std::int64_t n, std::int64_t max_wait_ns, bool emit,
                   bool lease = false) noexcept;
  std::int64_t unavailable_grant(std::int64_t deadline_ns, std::int64_t n, bool counts,
                                 const Interrupt* intr) noexcept;
  bool confirm(const std::string& member) noexcept;

  // mu_, held for a scope. fail_locked() and ok_locked() queue on_error's messages; they are
  // delivered once mu_ is released, so that on_error may wait for a lock of its own (Python's
  // GIL) while another thread that holds that lock waits for mu_ (last_error(), say).
  class Locked {
   public:
    explicit Locked(const Impl& impl) : impl_(impl), lock_(impl.mu_) {}
    ~Locked();
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;

   private:
    const Impl& impl_;
    std::unique_lock<std::mutex> lock_;
  };

  // Connection layer, mu_ held (remote_conn.cpp).
  // admin: connect now even while backing off (start, stop, set_rate, snapshot are explicit).
  Outcome script_locked(const std::vector<std::string>& args, bool admin = false);
  Outcome command_locked(const std::vector<std::string>& argv);
  bool ensure_connected_locked(Outcome* o, bool now_or_never = false);
  bool connect_locked(Outcome* o);
  void drop_locked();
  void back_off_locked(const std::string& why);
  void fail_locked(const std::string& message);
  void fail_locked(const Outcome& o);
  std::string server_text(std::string_view s) const;
  void ok_locked();
  std::vector<std::string> init_args(const detail::RemoteConfig& c, bool attach_only) const;
  detail::RemoteConfig read_config(const redisReply* fields);
  bool recreate_locked();

  // The snapshot operation (remote_admin.cpp).
  Stats stats_or_throw(bool admin);
  std::optional<Stats> stats_noexcept() noexcept;

  detail::RedisUrl url_;
  RemoteOptions options_;
  detail::RemoteConfig cfg_;
  std::string key_, bucket_prefix_, pending_key_;
  std::int64_t clock_offset_ns_ = 0;  // set_redis_clock_offset_for_testing(); 0 otherwise

  mutable std::mutex mu_;
  mutable std::vector<std::string> notes_;  // for on_error, delivered by ~Locked
  std::unique_ptr<detail::RedisConn> conn_;
  std::shared_ptr<detail::Lookup> lookup_;  // a name lookup an attempt left unfinished
  std::uint64_t conn_uses_ = 0;             // script calls answered on conn_
  std::string sha_;
  std::int64_t backoff_ns_ = 0;
  std::int64_t next_attempt_ns_ = 0;
  bool failing_ = false;
  std::string last_error_;
  std::string connect_error_;  // why the last connection attempt failed
  std::uint64_t round_trips_ = 0;
  int counter_pid_ = 0;

  std::atomic<std::int64_t> interval_ns_{0};
  std::atomic<std::int64_t> pending_emits_{0};  // counted while the server was away
  std::optional<Stats> last_stats_;
  std::optional<Throttle> fallback_;  // set by set_fallback() before any other call
  std::optional<Event> kill_;         // fallback_->kill_flag()

  // Leases. lease_mu_ guards them (taken after mu_, never before it): claims take only it.
  mutable std::mutex lease_mu_;
  Lease lease_;
  std::vector<std::shared_ptr<LeaseRec>> reports_;  // leases with grants not yet reported
  int lease_pid_ = 0;                               // the process they belong to
  double demand_per_s_ = 0;                       // this process's recent rate of units taken (mu_)
  std::int64_t last_renewal_ = 0, last_got_ = 0;  // the last call's time and units (mu_)

  // Reports (mu_): this process's token, its last sequence number, the chunks sent and not
  // acknowledged yet (see take_report()).
  int report_pid_ = 0;
  std::string token_;
  std::uint64_t report_seq_ = 0;
  std::string unacked_;
  int unacked_chunks_ = 0;
};

}  // namespace mpt
