#include "mpt/calibration.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "clock.hpp"
#include "futex.hpp"
#include "log.hpp"
#include "mpt/error.hpp"
#include "safe_file.hpp"
#include "tuning.hpp"

namespace mpt {

namespace {

using detail::kMaxSpinLeadNs;

using Json = nlohmann::json;
using OJson = nlohmann::ordered_json;

constexpr double kMaxCorrection = 0.5;  // a calibration never corrects by more

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string read_cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        auto v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        return v;
      }
    }
  }
  return "unknown";
}

// --- Reading, with the field's path in every error -----------------------------------------------

[[noreturn]] void bad(const std::string& where, const std::string& why) {
  throw InvalidArgument("calibration: '" + where + "' " + why);
}

const Json& field(const Json& obj, const std::string& where, const char* key) {
  if (!obj.is_object()) bad(where, "must be an object");
  const auto it = obj.find(key);
  if (it == obj.end()) bad(where.empty() ? key : where + "." + key, "is missing");
  return *it;
}

std::string join(const std::string& where, const char* key) {
  return where.empty() ? std::string(key) : where + "." + key;
}

std::string get_string(const Json& obj, const std::string& where, const char* key) {
  const Json& v = field(obj, where, key);
  if (!v.is_string()) bad(join(where, key), "must be a string");
  return v.get<std::string>();
}

double get_number(const Json& obj, const std::string& where, const char* key, double lo,
                  double hi) {
  const Json& v = field(obj, where, key);
  if (!v.is_number()) bad(join(where, key), "must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    std::ostringstream o;
    o << "must be between " << lo << " and " << hi << ", got " << d;
    bad(join(where, key), o.str());
  }
  return d;
}

std::int64_t get_int(const Json& obj, const std::string& where, const char* key, std::int64_t lo,
                     std::int64_t hi) {
  const Json& v = field(obj, where, key);
  if (!v.is_number_integer()) bad(join(where, key), "must be an integer");
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
    bad(join(where, key), "is out of range");
  }
  const auto i = v.get<std::int64_t>();
  if (i < lo || i > hi) {
    bad(join(where, key), "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                              ", got " + std::to_string(i));
  }
  return i;
}

Hardcap get_hardcap(const Json& obj, const std::string& where) {
  const std::string h = get_string(obj, where, "hardcap");
  if (h == "limit") return Hardcap::kLimit;
  if (h == "one") return Hardcap::kOne;
  if (h == "none") return Hardcap::kNone;
  bad(join(where, "hardcap"), "must be limit, one or none, got '" + h + "'");
}

LatenessStats get_lateness(const Json& obj, const std::string& where) {
  LatenessStats l;
  l.samples = get_int(obj, where, "samples", 0, INT64_MAX);
  l.p50_us = get_number(obj, where, "p50_us", 0, 1e9);
  l.p99_us = get_number(obj, where, "p99_us", 0, 1e9);
  l.max_us = get_number(obj, where, "max_us", 0, 1e9);
  return l;
}

BandRun get_run(const Json& obj, const std::string& where) {
  BandRun r;
  r.achieved_rate_per_sec = get_number(obj, where, "achieved_rate_per_sec", 0, 1e12);
  r.rel_error = get_number(obj, where, "rel_error", -1, 1e6);
  r.count = static_cast<std::uint64_t>(get_int(obj, where, "count", 0, INT64_MAX));
  r.max_in_window = static_cast<std::uint64_t>(get_int(obj, where, "max_in_window", 0, INT64_MAX));
  r.correction = get_number(obj, where, "correction", -1, 1);
  r.spin_lead_ns = get_int(obj, where, "spin_lead_ns", 0, kMaxSpinLeadNs);
  // "cpu_us_per_grant" came later in schema 1: a file without it did not measure it.
  if (obj.contains("cpu_us_per_grant")) {
    r.cpu_us_per_grant = get_number(obj, where, "cpu_us_per_grant", 0, 1e9);
  }
  return r;
}

OJson lateness_json(const LatenessStats& l) {
  return {{"samples", l.samples}, {"p50_us", l.p50_us}, {"p99_us", l.p99_us}, {"max_us", l.max_us}};
}

OJson run_json(const BandRun& r) {
  OJson j = {{"achieved_rate_per_sec", r.achieved_rate_per_sec},
             {"rel_error", r.rel_error},
             {"count", r.count},
             {"max_in_window", r.max_in_window},
             {"correction", r.correction},
             {"spin_lead_ns", r.spin_lead_ns}};
  if (r.cpu_us_per_grant) j["cpu_us_per_grant"] = *r.cpu_us_per_grant;  // unknown: no key
  return j;
}

std::string describe(const HostIdentity& h) {
  return "'" + h.hostname + "' (kernel " + h.kernel + ", " + h.cpu_model + ", " +
         std::to_string(h.cores) + " cores, clocksource " + h.clocksource + ")";
}

// --- The log hook and the process's cached calibration -------------------------------------------

std::mutex g_mutex;  // guards everything below
LogHook g_hook = [](std::string_view m) {
  std::fprintf(stderr, "mpthrottle: warning: %.*s\n", static_cast<int>(m.size()), m.data());
};
bool g_loaded = false;
std::filesystem::path g_path;
std::optional<Calibration> g_calibration;
std::string g_why;                    // why g_calibration is empty
std::set<std::string> g_warned_once;  // warnings resolve_tuning() gives once per process

// Sends a message to the hook: copied under the lock, called without it (a hook may call back
// into the library), and a hook that throws loses its message, never the caller's work.
void send(const std::string& message) noexcept {
  try {
    LogHook hook;
    {
      std::lock_guard lock(g_mutex);
      hook = g_hook;
    }
    if (hook) hook(message);
  } catch (...) {
  }
}

}  // namespace

HostIdentity HostIdentity::current() {
  HostIdentity h;
  utsname u{};
  if (uname(&u) == 0) {
    h.hostname = u.nodename;
    h.kernel = u.release;
  }
  h.cpu_model = read_cpu_model();
  h.clocksource =
      read_first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  if (h.clocksource.empty()) h.clocksource = "unknown";
  h.cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  return h;
}

bool Calibration::covers(double rate, Hardcap hardcap) const {
  double lo = INFINITY, hi = -INFINITY;
  auto span = [&](Hardcap h) {
    for (const auto& b : bands) {
      if (b.hardcap != h) continue;
      lo = std::min(lo, b.rate_per_sec);
      hi = std::max(hi, b.rate_per_sec);
    }
  };
  span(hardcap);
  if (lo > hi && hardcap == Hardcap::kNone) span(Hardcap::kLimit);
  return rate >= lo * (1 - 1e-9) && rate <= hi * (1 + 1e-9);
}

Calibration::Choice Calibration::choose(double rate, Hardcap hardcap) const {
  Choice c{0.0, spin_lead_ns};
  auto pick = [&](Hardcap h) {
    std::vector<const CalibrationBand*> v;
    for (const auto& b : bands)
      if (b.hardcap == h) v.push_back(&b);
    return v;
  };
  auto v = pick(hardcap);
  if (v.empty() && hardcap == Hardcap::kNone) v = pick(Hardcap::kLimit);
  if (v.empty() || !(rate > 0) || !std::isfinite(rate)) return c;
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->rate_per_sec < b->rate_per_sec; });
  if (rate <= v.front()->rate_per_sec) return {v.front()->correction, v.front()->spin_lead_ns};
  if (rate >= v.back()->rate_per_sec) return {v.back()->correction, v.back()->spin_lead_ns};
  for (std::size_t i = 1; i < v.size(); ++i) {
    const CalibrationBand& lo = *v[i - 1];
    const CalibrationBand& hi = *v[i];
    if (rate > hi.rate_per_sec) continue;
    const double span = std::log(hi.rate_per_sec) - std::log(lo.rate_per_sec);
    const double w = span > 0 ? (std::log(rate) - std::log(lo.rate_per_sec)) / span : 1.0;
    c.correction = lo.correction + w * (hi.correction - lo.correction);
    c.spin_lead_ns = std::llround(static_cast<double>(lo.spin_lead_ns) +
                                  w * static_cast<double>(hi.spin_lead_ns - lo.spin_lead_ns));
    return c;
  }
  return c;
}

std::string Calibration::to_json() const {
  OJson j;
  j["schema"] = kSchema;
  j["tool"] = "mpthrottle";
  j["tool_version"] = tool_version;
  j["created_utc"] = created_utc;
  j["host"] = {{"hostname", host.hostname},
               {"kernel", host.kernel},
               {"cpu_model", host.cpu_model},
               {"clocksource", host.clocksource},
               {"cores", host.cores}};
  j["ground_truth"] = ground_truth;
  j["workers"] = workers;
  j["seconds"] = seconds;
  j["quick"] = quick;
  j["lateness"] = {{"futex", lateness_json(futex_lateness)},
                   {"nanosleep", lateness_json(nanosleep_lateness)}};
  OJson trials = OJson::array();
  for (const auto& t : spin_lead_trials) {
    trials.push_back({{"spin_lead_ns", t.spin_lead_ns},
                      {"lateness", lateness_json(t.lateness)},
                      {"cpu_us_per_wait", t.cpu_us_per_wait}});
  }
  j["spin_lead_ns"] = spin_lead_ns;
  j["spin_lead_trials"] = trials;
  OJson bs = OJson::array();
  for (const auto& b : bands) {
    bs.push_back({{"hardcap", to_string(b.hardcap)},
                  {"rate_per_sec", b.rate_per_sec},
                  {"correction", b.correction},
                  {"spin_lead_ns", b.spin_lead_ns},
                  {"uncorrected", run_json(b.uncorrected)},
                  {"verified", run_json(b.verified)},
                  {"note", b.note}});
  }
  j["bands"] = bs;
  // replace: a host name or CPU model that is not UTF-8 must not make the file unwritable.
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

Calibration Calibration::from_json(std::string_view text) {
  const Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) throw InvalidArgument("calibration: not valid JSON");
  if (!j.is_object()) throw InvalidArgument("calibration: not a JSON object");
  const auto schema = field(j, "", "schema");
  if (!schema.is_number_integer() || schema.get<std::int64_t>() != kSchema) {
    bad("schema", "is " + schema.dump() + ", this library reads schema " + std::to_string(kSchema) +
                      " (run mpt calibrate again)");
  }
  Calibration c;
  c.tool_version = get_string(j, "", "tool_version");
  c.created_utc = get_string(j, "", "created_utc");
  const Json& h = field(j, "", "host");
  c.host.hostname = get_string(h, "host", "hostname");
  c.host.kernel = get_string(h, "host", "kernel");
  c.host.cpu_model = get_string(h, "host", "cpu_model");
  c.host.clocksource = get_string(h, "host", "clocksource");
  c.host.cores = static_cast<int>(get_int(h, "host", "cores", 1, 1 << 20));
  c.ground_truth = get_string(j, "", "ground_truth");
  if (c.ground_truth != "ebpf" && c.ground_truth != "monitor") {
    bad("ground_truth", "must be ebpf or monitor, got '" + c.ground_truth + "'");
  }
  c.workers = static_cast<int>(get_int(j, "", "workers", 1, 1 << 20));
  c.seconds = get_number(j, "", "seconds", 0, 86400);
  // "quick" came later in schema 1: a file without it was a full run.
  if (j.contains("quick")) {
    if (!j["quick"].is_boolean()) bad("quick", "must be true or false");
    c.quick = j["quick"].get<bool>();
  }
  const Json& lat = field(j, "", "lateness");
  c.futex_lateness = get_lateness(field(lat, "lateness", "futex"), "lateness.futex");
  c.nanosleep_lateness = get_lateness(field(lat, "lateness", "nanosleep"), "lateness.nanosleep");
  c.spin_lead_ns = get_int(j, "", "spin_lead_ns", 0, kMaxSpinLeadNs);
  const Json& trials = field(j, "", "spin_lead_trials");
  if (!trials.is_array()) bad("spin_lead_trials", "must be an array");
  for (std::size_t i = 0; i < trials.size(); ++i) {
    const std::string w = "spin_lead_trials[" + std::to_string(i) + "]";
    SpinLeadTrial t;
    t.spin_lead_ns = get_int(trials[i], w, "spin_lead_ns", 0, kMaxSpinLeadNs);
    t.lateness = get_lateness(field(trials[i], w, "lateness"), w + ".lateness");
    t.cpu_us_per_wait = get_number(trials[i], w, "cpu_us_per_wait", 0, 1e9);
    c.spin_lead_trials.push_back(t);
  }
  const Json& bands = field(j, "", "bands");
  if (!bands.is_array()) bad("bands", "must be an array");
  for (std::size_t i = 0; i < bands.size(); ++i) {
    const std::string w = "bands[" + std::to_string(i) + "]";
    CalibrationBand b;
    b.hardcap = get_hardcap(bands[i], w);
    b.rate_per_sec = get_number(bands[i], w, "rate_per_sec", 1e-6, 1e9);
    b.correction = get_number(bands[i], w, "correction", -kMaxCorrection, kMaxCorrection);
    b.spin_lead_ns = get_int(bands[i], w, "spin_lead_ns", 0, kMaxSpinLeadNs);
    b.uncorrected = get_run(field(bands[i], w, "uncorrected"), w + ".uncorrected");
    b.verified = get_run(field(bands[i], w, "verified"), w + ".verified");
    b.note = get_string(bands[i], w, "note");
    for (const auto& other : c.bands) {
      if (other.hardcap == b.hardcap && other.rate_per_sec == b.rate_per_sec) {
        bad(w, "repeats the band " + std::string(to_string(b.hardcap)) + " " +
                   std::to_string(b.rate_per_sec) + "/s");
      }
    }
    c.bands.push_back(std::move(b));
  }
  return c;
}

void Calibration::store(
    const std::filesystem::path& path,
    const std::function<void(const std::filesystem::path& temp)>& before_rename) const {
  // Readable by every user, like any host-wide configuration; written by its owner only.
  detail::AtomicWriteOptions how;
  how.mode = 0644;
  how.create_parents = true;
  how.before_rename = before_rename;
  detail::write_file_atomically(path, to_json(), how);
}

Calibration Calibration::from_file(const std::filesystem::path& path) {
  return from_json(detail::read_file_capped(path, kMaxFileBytes, "calibration file"));
}

std::optional<Calibration> Calibration::load(const std::filesystem::path& path, std::string* why) {
  auto no = [&](const std::string& reason) -> std::optional<Calibration> {
    if (why) *why = reason;
    return std::nullopt;
  };
  const std::string name = "calibration file " + path.string();
  Calibration c;
  try {
    c = from_file(path);
  } catch (const InvalidArgument& e) {
    return no(name + " is ignored: " + e.what());
  } catch (const SegmentError& e) {
    return no(e.what());
  }
  const HostIdentity here = HostIdentity::current();
  if (!(c.host == here)) {
    return no(name + " is ignored: it was made on " + describe(c.host) + ", this host is " +
              describe(here) + " (run mpt calibrate here)");
  }
  if (why) why->clear();
  return c;
}

std::filesystem::path default_calibration_path() {
  if (const char* env = std::getenv("MPT_CALIBRATION"); env && *env) return env;
  if (::geteuid() == 0) return "/var/lib/mpthrottle/calibration.json";
  std::filesystem::path state;
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) {
    state = x;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    state = std::filesystem::path(home) / ".local" / "state";
  } else {
    state = "/tmp";
  }
  return state / "mpthrottle" / "calibration.json";
}

LogHook set_log_hook(LogHook hook) {
  std::lock_guard lock(g_mutex);
  LogHook old = std::move(g_hook);
  g_hook = std::move(hook);
  return old;
}

void reload_calibration() {
  std::lock_guard lock(g_mutex);
  g_loaded = false;
  g_calibration.reset();
  g_warned_once.clear();
}

namespace detail {

void warn(const std::string& message) noexcept {
  send(message);
}

namespace {

std::string rate_words(double rate) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g/s", rate);
  return buf;
}

// The warning for a throttle that auto_calibrate would tune but no calibration covers, where
// this host is known to fall short; "" otherwise.
std::string uncalibrated_warning(double rate, Hardcap h, const Calibration* file,
                                 const std::string& why_none) {
  if (!calibration::falls_short_uncalibrated(rate, h)) return "";
  if (file && file->covers(rate, h)) return "";
  std::string what = "a throttle of " + rate_words(rate) + " with hardcap " + to_string(h);
  if (!file) {
    return what + " runs uncalibrated (" + why_none +
           "); such a throttle falls short of its rate on hosts like this one: run `mpt "
           "calibrate` to measure this host";
  }
  return what + " is outside the rates calibrated for it (" + default_calibration_path().string() +
         "): it uses the nearest band's correction, measured at another rate; run `mpt calibrate "
         "--rates ...` with this rate among them";
}

}  // namespace

Tuning resolve_tuning(std::int64_t max_n, double per_s, const ThrottleOptions& o) {
  Tuning t;
  t.spin_lead_ns = o.spin_lead.value_or(kDefaultSpinLead).count();
  if (o.correction) {
    t.correction = *o.correction;
    t.source = "explicit";
    return t;
  }
  const double rate = static_cast<double>(max_n) / per_s;
  if (!o.auto_calibrate.value_or(rate >= 49.0)) return t;

  std::unique_lock lock(g_mutex);
  const std::filesystem::path path = default_calibration_path();
  std::vector<std::string> messages;  // sent once the lock is released
  if (!g_loaded || path != g_path) {
    g_why.clear();
    g_calibration = Calibration::load(path, &g_why);
    g_path = path;
    g_loaded = true;
    // A missing file is the normal state of an uncalibrated host: it warns only where it matters
    // (below), not for every throttle.
    std::error_code ec;
    if (!g_calibration && std::filesystem::exists(std::filesystem::symlink_status(path, ec)))
      messages.push_back(g_why);
  }
  t.warning =
      uncalibrated_warning(rate, o.hardcap, g_calibration ? &*g_calibration : nullptr, g_why);
  if (!t.warning.empty() && g_warned_once.insert(t.warning).second) messages.push_back(t.warning);
  const std::optional<Calibration> file = g_calibration;
  lock.unlock();
  for (const auto& m : messages)
    send(m);
  if (!file) return t;
  const Calibration::Choice c = file->choose(rate, o.hardcap);
  t.correction = c.correction;
  if (!o.spin_lead) t.spin_lead_ns = std::clamp<std::int64_t>(c.spin_lead_ns, 0, kMaxSpinLeadNs);
  std::string src = "calibration " + path.string();
  if (src.size() > 95) src = "calibration ..." + src.substr(src.size() - 80);
  t.source = src;
  return t;
}

}  // namespace detail

namespace calibration {

bool falls_short_uncalibrated(double rate, Hardcap h) {
  return h == Hardcap::kOne && rate >= kUncalibratedShortOne;
}

std::size_t choose_spin_lead(const std::vector<LeadTrial>& trials) {
  if (trials.empty()) throw InvalidArgument("choose_spin_lead: no trials");
  const auto error_of = [](const LeadTrial& t) {
    return std::isnan(t.abs_error) ? INFINITY : std::abs(t.abs_error);
  };
  const auto cpu_of = [](const LeadTrial& t) {
    return t.cpu_us_per_grant && !std::isnan(*t.cpu_us_per_grant) ? *t.cpu_us_per_grant : INFINITY;
  };
  // A trial that counted nothing measured no error: it takes part only when none counted anything,
  // and then nothing is "nearly as accurate": the most accurate is kept.
  const bool counted =
      std::any_of(trials.begin(), trials.end(), [](const LeadTrial& t) { return t.count > 0; });
  const auto eligible = [&](const LeadTrial& t) { return t.count > 0 || !counted; };
  const auto reach = [&](const LeadTrial& t) {
    return counted ? kLeadWorth + 2.0 / static_cast<double>(t.count) : 0.0;
  };
  double most_accurate = INFINITY;
  for (const auto& t : trials)
    if (eligible(t)) most_accurate = std::min(most_accurate, error_of(t));
  std::optional<std::size_t> kept;
  for (std::size_t i = 0; i < trials.size(); ++i) {
    const LeadTrial& t = trials[i];
    if (!eligible(t) || !(error_of(t) <= most_accurate + reach(t))) continue;
    if (kept) {
      const LeadTrial& k = trials[*kept];
      if (cpu_of(t) > cpu_of(k)) continue;
      if (cpu_of(t) == cpu_of(k) && t.spin_lead_ns >= k.spin_lead_ns) continue;
    }
    kept = i;
  }
  return kept.value_or(0);
}

std::int64_t percentile(const std::vector<std::int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::optional<double> achieved_rate_per_sec(std::uint64_t count, std::int64_t first_ns,
                                            std::int64_t last_ns) noexcept {
  if (count < 2 || last_ns <= first_ns) return std::nullopt;
  return static_cast<double>(count - 1) / (static_cast<double>(last_ns - first_ns) / 1e9);
}

std::optional<double> rel_error(std::optional<double> achieved_rate_per_sec,
                                double target_rate_per_sec) noexcept {
  if (!achieved_rate_per_sec || !(target_rate_per_sec > 0)) return std::nullopt;
  return *achieved_rate_per_sec / target_rate_per_sec - 1.0;
}

namespace {

LatenessStats stats_of(std::vector<std::int64_t> late_ns) {
  std::sort(late_ns.begin(), late_ns.end());
  LatenessStats s;
  s.samples = static_cast<std::int64_t>(late_ns.size());
  s.p50_us = static_cast<double>(percentile(late_ns, 0.50)) / 1e3;
  s.p99_us = static_cast<double>(percentile(late_ns, 0.99)) / 1e3;
  s.max_us = late_ns.empty() ? 0 : static_cast<double>(late_ns.back()) / 1e3;
  return s;
}

std::int64_t thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

LatenessStats measure_futex_lateness(int samples, std::chrono::nanoseconds sleep,
                                     std::chrono::nanoseconds spin_lead, double* cpu_us_per_wait) {
  if (samples < 1) throw InvalidArgument("samples must be at least 1");
  if (sleep.count() <= 0) throw InvalidArgument("sleep must be positive");
  std::atomic<std::uint32_t> word{0};  // never woken: every wait ends at its deadline
  std::vector<std::int64_t> late;
  late.reserve(static_cast<std::size_t>(samples));
  const std::int64_t cpu0 = thread_cpu_ns();
  for (int i = 0; i < samples; ++i) {
    const std::int64_t due = detail::mono_ns() + sleep.count();
    const std::int64_t wake_at = due - spin_lead.count();
    std::int64_t now = detail::mono_ns();
    while (now < wake_at) {
      detail::futex_wait(&word, 0, wake_at);
      now = detail::mono_ns();
    }
    while (now < due) {
      detail::cpu_relax();
      now = detail::mono_ns();
    }
    late.push_back(now - due);
  }
  if (cpu_us_per_wait) {
    *cpu_us_per_wait = static_cast<double>(thread_cpu_ns() - cpu0) / 1e3 / samples;
  }
  return stats_of(std::move(late));
}

LatenessStats measure_nanosleep_lateness(int samples, std::chrono::nanoseconds sleep) {
  if (samples < 1) throw InvalidArgument("samples must be at least 1");
  if (sleep.count() <= 0) throw InvalidArgument("sleep must be positive");
  std::vector<std::int64_t> late;
  late.reserve(static_cast<std::size_t>(samples));
  for (int i = 0; i < samples; ++i) {
    const std::int64_t due = detail::mono_ns() + sleep.count();
    timespec ts{static_cast<time_t>(due / 1'000'000'000), static_cast<long>(due % 1'000'000'000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
    late.push_back(detail::mono_ns() - due);
  }
  return stats_of(std::move(late));
}

}  // namespace calibration

}  // namespace mpt
