// mpt/redis.hpp — a rate limit shared by many hosts: a throttle kept in Redis.
//
// A RemoteThrottle is the fleet's version of mpt::Throttle (throttle.hpp): the same calls with the
// same meaning (both satisfy mpt::ThrottleLike, throttle_like.hpp), but the schedule, the counters
// and the state live in one Redis server, so every call that reads or changes them is a round
// trip, and none of them is "never blocks":
//
//   auto throttle = mpt::RemoteThrottle::connect("redis://cache:6379/crawl", 100, 1s);
//   throttle.start();
//   while (!throttle.kill_flag().is_set()) { throttle.await_fuel(); /* work */ }   // any host
//   auto [runtime, total, mean_interval_s, mean_rate] = throttle.stop();
//
// The bucket is GCRA on the server's clock, in one Lua script per acquisition (one round trip);
// await_fuel() then sleeps locally until its slot. Replies that are times are relative ("due in X
// ns"), which each client turns into its own CLOCK_MONOTONIC time: clients whose clocks are skewed
// share one schedule. Only this process's kill flag and spin lead are local.
//
// Leases: a process that takes units fast (about 4 or more in 2 ms) reserves k consecutive slots
// in one call (k from its own recent demand, at most max_lease) and hands them to its own
// waiters, each at its slot; the others keep one call per unit. A leased slot is granted at most
// once, in the process that leased it (not in children forked later); one nobody takes (the
// process stops asking, dies, or drops its lease on stop() or set_rate()) is lost time, never an
// extra grant and never counted. Leased units are counted when their process reports them, with
// its next call (see Totals). docs/design.md ("Redis: leased slots") has the mechanism.
//
// Bounds: every wait for the server is bounded, by connect_timeout per connection attempt (name
// resolution included) and command_timeout per request. A call sends one request, sometimes a few
// (the script loaded again after NOSCRIPT, the throttle re-made after a server restart, a stop
// seen while asleep checked with the server), each bounded so. The requests of one process's
// threads go one at a time over its one connection: a call waits for those of other threads in
// flight. After a failure, reconnection attempts back off from 10 ms to
// reconnect_backoff_max; a call made while backing off does not wait, it fails at once.
//
// Signals: a signal handler that runs while a call waits for the server (EINTR, with or without
// SA_RESTART, as for poll(2)) ends the call: has_fuel() and await_fuel() return false whatever
// on_unavailable says, last_error() says "interrupted by a signal", start(), stop(), set_rate() and
// snapshot() throw RemoteError (kUnavailable).
//
// Stopping: stop() takes effect in other hosts' processes at their next call to the server (a
// process asleep until its slot wakes at the slot; one holding a lease grants what is left of it
// first, about 2 ms of its demand); in this process and its children forked after connect() at
// once (the kill flag is local). Before start(), await_fuel() polls the state every 20 ms until
// its timeout. set_rate() reaches other processes the same way.
//
// Totals: an emission (auto_emit) is counted when its unit is granted, at its slot on the server's
// clock, not when the slot is reserved; stop() counts the slots that came before the server
// received it and never the others. So stop()'s total is final, and:
//   * in the stopping process and its children forked after connect(), a unit is granted exactly
//     when it is counted (stop() sets the kill flag before it tells the server; a process whose
//     flag is set while it sleeps until its slot asks the server, in one round trip, whether the
//     slot came first);
//   * a process elsewhere asleep until a slot after the stop still proceeds at that slot (it
//     learns of the stop at its next call), and that unit is not counted;
//   * units granted while the server could not be reached (kFailOpen, kLocalFallback) are added
//     when it answers again, even after a stop; if the server cannot be reached at the stop, a
//     sleeping local worker gives its unit up and the still running server counts it at its slot;
//   * exactness assumes the server's clock and CLOCK_MONOTONIC here run at the same rate while a
//     process waits (a step of the server's clock can move one unit across the stop);
//   * leased units (see Leases) are counted, at their slots, when their process reports them:
//     the stopping process's go with stop() (so there too a unit is granted exactly when it is
//     counted); its forked children report when they see the kill flag, others at their next
//     call, and the stopped run's total then grows by those before the stop, never by a unit
//     after it (also when the report comes after a later start(): the last 8 runs are kept). A
//     report is counted once even when it is resent after a reply that was lost. stop()'s
//     total is final when no process holds a lease. A process killed with
//     unreported grants leaves them uncounted.
//
// Passwords: no message, exception, last_error(), on_error call or url() shows the password.
//
// Built without Redis (MPT_REDIS=OFF), connect() throws InvalidArgument saying so.
//
// Handles are cheap to copy (copies share one connection per process) and may be used by children
// forked after connect(): each process opens its own connection. Safe for concurrent use by
// threads (one mutex serialises a process's round trips); every value read may be stale on return.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mpt/event.hpp"
#include "mpt/monitor.hpp"
#include "mpt/throttle_like.hpp"

namespace mpt {

// What a remote throttle does while the server is unreachable or times out.
enum class OnUnavailable : std::uint32_t {
  // The default: an error. has_fuel() and await_fuel() return false (await_fuel() after at most
  // one reconnection attempt within its timeout), last_error() says why, on_error is called.
  kFail = 0,
  kFailOpen = 1,    // grant: has_fuel()/await_fuel() return true at once (no limit at all)
  kFailClosed = 2,  // deny: has_fuel() false; await_fuel() waits for the server until its timeout
  // Go on with a local throttle at rate / fallback_divisor in this process (its processes forked
  // after connect() share it); back on the server's schedule as soon as it answers again.
  kLocalFallback = 3,
};
const char* to_string(OnUnavailable o) noexcept;  // "fail", "fail_open", "fail_closed", ...

struct RemoteOptions {
  // What a throttle made by connect(url, max_n, per, ...) stores. A throttle that already exists
  // keeps its stored values: these are then ignored.
  bool as_monitor = true;   // count emissions (latest/mean/lo_hi/hi_lo); false: throttle only
  bool as_throttle = true;  // limit the rate; false: monitor only (await_fuel never waits)
  bool auto_emit = true;    // has_fuel()/await_fuel() count an emission per unit taken
  Hardcap hardcap = Hardcap::kLimit;
  // The slot interval is per/max_n * (1 - correction), -1 < c < 1. Default 0: a remote throttle
  // is not calibrated (the round trip, not this host, sets its accuracy).
  std::optional<double> correction;

  // This process only.
  // How long before its slot a waiter stops sleeping and spins (0 to 10 ms; kDefaultSpinLead).
  std::optional<std::chrono::nanoseconds> spin_lead;
  // What has_fuel()/await_fuel() do while the server cannot be reached (see OnUnavailable).
  OnUnavailable on_unavailable = OnUnavailable::kFail;
  // k for OnUnavailable::kLocalFallback: this process goes on alone at rate / k (k >= 1). Set it
  // to the number of hosts sharing the throttle so that the fleet stays under the rate.
  std::int64_t fallback_divisor = 1;
  // Per connection attempt, name resolution included, 1 ms to 60 s.
  std::chrono::milliseconds connect_timeout{500};
  // Per request as a whole (sending it and reading all of its reply), 1 ms to 60 s.
  std::chrono::milliseconds command_timeout{500};
  // Reconnection attempts back off exponentially from 10 ms up to this (10 ms to 60 s).
  std::chrono::milliseconds reconnect_backoff_max{1000};
  // The most slots one call may lease for this process (1 to 4096; see "Leases" above). 1: one
  // call per unit, always.
  std::int64_t max_lease = 256;
  // Called (from the thread that saw it) when the server becomes unreachable or answers with an
  // error, and once when it is back ("redis://...: reconnected"). Called with no lock of the
  // throttle's held, so it may take locks of its own and call the accessors (last_error(),
  // round_trips()); calls that go to the server from on_error add their own failures to report.
  std::function<void(const std::string& message)> on_error;
};

class RemoteThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  // RemoteThrottle::connect()
  // The throttle NAME at "redis://[[USER]:PASSWORD@]HOST[:PORT]/NAME" (port 6379 by default; NAME
  // as for named local throttles). Creates it with max_n per `per` and `options` if NAME does not
  // exist, otherwise adopts the stored configuration (rate, hardcap, as_monitor, as_throttle,
  // auto_emit) and ignores the given one. Blocks for the connection and one or two requests.
  // Throws InvalidArgument for a bad URL, rate or option (before it connects), RemoteError when
  // the server cannot be reached, refuses the password, or holds keys of the wrong type under
  // mpt:{NAME}:.
  static RemoteThrottle connect(std::string_view url, std::int64_t max_n,
                                std::chrono::duration<double> per = std::chrono::seconds(1),
                                const RemoteOptions& options = {});
  // RemoteThrottle::connect(): attaches to an existing throttle (RemoteError kNotFound if none);
  // `options` gives this process's settings only (on_unavailable, timeouts, spin lead).
  static RemoteThrottle connect(std::string_view url, const RemoteOptions& options = {});

  // RemoteThrottle::url(): the URL without the password. Never blocks.
  std::string url() const;
  // RemoteThrottle::last_error(): why the last call to the server failed (empty after a success).
  // Per process; stale as soon as it returns. Sends nothing; waits for a request another thread
  // has in flight (one lock guards the connection and these counters).
  std::string last_error() const;
  // RemoteThrottle::round_trips(): requests this process has sent to the server for this handle
  // (and its copies). One per has_fuel()/await_fuel() call, as a rule (see Bounds), or one per
  // lease of many units (see Leases). Sends nothing; waits like last_error().
  std::uint64_t round_trips() const noexcept;

  // RemoteThrottle::start()
  // Starts (or restarts) the throttle on the server: one unit available now; processes waiting
  // for the start (here or elsewhere) see it at their next poll. Clears this process's kill flag.
  // Starting a running throttle does nothing. One round trip; throws RemoteError when the server
  // cannot do it.
  void start();

  // RemoteThrottle::stop()
  // Sets this process's kill flag (its waiters and its forked children's return false at once),
  // then stops the throttle on the server and returns the summary; the total is final (see
  // "Totals" above). One round trip; throws RemoteError when the server cannot be reached (the
  // local kill flag is set all the same).
  Summary stop();

  // RemoteThrottle::state(): the server's state. One round trip; the last state seen when the
  // server cannot be reached.
  ThrottleState state() const noexcept;
  bool running() const noexcept { return state() == ThrottleState::kRunning; }

  // RemoteThrottle::has_fuel()
  // Takes n units if they are available now and returns true (counting n emissions when
  // auto_emit); otherwise takes nothing and returns false. False too when not running or n < 1.
  // One round trip, or none when this process's lease answers: blocks at most command_timeout
  // (plus connect_timeout when it reconnects).
  // While the server cannot be reached, on_unavailable decides.
  [[nodiscard]] bool has_fuel(std::int64_t n = 1) noexcept;

  // RemoteThrottle::await_fuel()
  // Blocks until n units are the caller's (true) or cannot be (false): the throttle was stopped,
  // the timeout cannot be met, or n < 1. A timeout that cannot be met by the earliest free slot
  // returns false after one round trip without taking anything; no timeout waits forever. A
  // round trip may overrun the timeout by up to command_timeout (plus connect_timeout). Called
  // before start(), it polls for the start every 20 ms. Counts n emissions when auto_emit.
  bool await_fuel() noexcept;
  bool await_fuel(std::chrono::nanoseconds timeout) noexcept;
  bool await_fuel(std::int64_t n,
                  std::optional<std::chrono::nanoseconds> timeout = std::nullopt) noexcept;
  // RemoteThrottle::await_fuel_until(): the same with an absolute deadline.
  bool await_fuel_until(TimePoint deadline, std::int64_t n = 1) noexcept;
  // RemoteThrottle::await_grant(): await_fuel_until() that says when: the CLOCK_MONOTONIC time at
  // which the units were granted (this host's view of the server's slot), or nullopt where
  // await_fuel_until() returns false.
  [[nodiscard]] std::optional<TimePoint> await_grant(TimePoint deadline = TimePoint::max(),
                                                     std::int64_t n = 1) noexcept;
  // RemoteThrottle::await_grant(deadline, n, interrupt): the same, but the local waits (until the
  // slot, for the start, for a reconnection, on the local fallback) last at most
  // interrupt.period and interrupt.check is called on each wake; when it returns true the call
  // asks the server to withdraw its reservation (one round trip) and returns nullopt, unless the
  // slot had already come and the server counted it: the unit is then granted, so that the caller
  // has every unit the server counts. A round trip in progress is not cut: it ends within
  // command_timeout (see Interrupt in throttle_like.hpp).
  [[nodiscard]] std::optional<TimePoint> await_grant(TimePoint deadline, std::int64_t n,
                                                     const Interrupt& interrupt) noexcept;

  // RemoteThrottle::reserve()
  // Reserves n units on the server and returns the time at which they are due (at or before now
  // means "go now"), or nullopt, taking nothing, if that time would be after `deadline`, the
  // throttle is not running, or the server cannot be reached. `now` only measures the deadline
  // (the server's clock decides the slot). Counts nothing: call emit() when it counts emissions.
  // One round trip.
  [[nodiscard]] std::optional<TimePoint> reserve(std::int64_t n, TimePoint now,
                                                 TimePoint deadline) noexcept;

  // RemoteThrottle::release()
  // Reports this process's leased grants not yet reported and drops its lease (its unused slots
  // are lost time; see Leases). One round trip when there is something to report, none
  // otherwise; never throws. For a process that leaves its loop on the kill flag, or ends without
  // stop(), with no further call: what it was granted is then counted. The last copy of a handle
  // does the same when it goes away (on its open connection), but _exit() and a signal skip that.
  void release() noexcept;

  // RemoteThrottle::available(): units that could be taken now without waiting (0 when not
  // running). One round trip; when the server cannot be reached, the last value seen (0 before
  // any), like the other accessors.
  [[nodiscard]] std::int64_t available() const noexcept;

  // RemoteThrottle::set_rate()
  // Changes the rate to max_n per `per` for every host: reserved slots are rescaled to the new
  // interval from now on, never before the end of the slots leased. A process asleep until its
  // slot keeps that slot; leased slots keep theirs (this process drops its lease: lost time). A
  // process elsewhere that holds a lease grants the rest of it at the old spacing until its next
  // call: at most max_lease slots and 4 ms of the old rate per process, on top of max_n in a
  // window of `per` across the change. Throws InvalidArgument like connect(),
  // RemoteError when the server cannot do it. One round trip.
  void set_rate(std::int64_t max_n, std::chrono::duration<double> per);

  // RemoteThrottle::emit(): counts one emission (at `timestamp`, default now), unless as_monitor
  // is false or the throttle is stopped. One round trip; an emission the server cannot take now
  // is kept and sent with this process's next acquisition.
  void emit() noexcept;
  void emit(TimePoint timestamp) noexcept;

  // This process's kill flag: stop() sets it (here, or when a call learns the server stopped),
  // start() clears it. Shared with children forked after connect(). Never blocks.
  Event kill_flag() const;

  // Monitor (see monitor.hpp), as the server counts it. One round trip each; the last values seen
  // when the server cannot be reached (0 before any).
  Rate latest() const noexcept;  // emissions in the last complete second (server clock)
  Rate mean() const noexcept;    // total / runtime
  Rate lo_hi() const noexcept;   // shortest interval between emissions, highest rate
  Rate hi_lo() const noexcept;   // longest interval between emissions, lowest rate
  std::uint64_t total() const noexcept;
  // Everything at once, in one round trip. Throws RemoteError when the server cannot be reached.
  Snapshot snapshot() const;

  // Never block: fixed at connect(), or the last values seen.
  std::uint64_t id() const noexcept;
  const std::string& name() const noexcept;            // NAME from the URL
  std::chrono::nanoseconds interval() const noexcept;  // the last slot interval seen
  std::chrono::nanoseconds spin_lead() const noexcept;

  class Impl;  // lib/src/redis/remote_impl.hpp

 private:
  explicit RemoteThrottle(std::shared_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

static_assert(ThrottleLike<RemoteThrottle>);

}  // namespace mpt
