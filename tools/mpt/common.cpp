// tools/mpt/common.cpp — see common.hpp.
#include "common.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>

#include "mpt/calibration.hpp"
#include "mpt/error.hpp"

namespace mpt::cli {

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string format_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

CLI::Validator integer_in(std::int64_t min, std::int64_t max) {
  const std::string desc = "INT in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  return CLI::Validator(
      [min, max](std::string& s) -> std::string {
        const std::string t = trim(s);
        if (t.empty()) return "expected an integer, got an empty value";
        std::size_t i = (t[0] == '-' || t[0] == '+') ? 1 : 0;
        if (i == t.size()) return "expected an integer, got '" + s + "'";
        for (std::size_t k = i; k < t.size(); ++k) {
          if (t[k] < '0' || t[k] > '9') return "expected an integer, got '" + s + "'";
        }
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(t.c_str(), &end, 10);
        if (errno == ERANGE || v < min || v > max) {
          return "'" + s + "' is out of range [" + std::to_string(min) + ", " +
                 std::to_string(max) + "]";
        }
        s = t;
        return {};
      },
      desc);
}

CLI::Validator number_in(double min, double max, bool min_exclusive, bool max_exclusive) {
  const std::string range = std::string(min_exclusive ? "(" : "[") + format_number(min) + ", " +
                            format_number(max) + (max_exclusive ? ")" : "]");
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        const std::string t = trim(s);
        if (t.empty()) return "expected a number, got an empty value";
        // strtod accepts "nan", "inf", hex floats; allow only plain decimal notation.
        for (char c : t) {
          const bool ok =
              (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E';
          if (!ok) return "expected a number, got '" + s + "'";
        }
        errno = 0;
        char* end = nullptr;
        const double v = std::strtod(t.c_str(), &end);
        if (end == t.c_str() || *end != '\0') return "expected a number, got '" + s + "'";
        if (errno == ERANGE || !std::isfinite(v) || v < min || v > max ||
            (min_exclusive && v == min) || (max_exclusive && v == max)) {
          return "'" + s + "' is out of range " + range;
        }
        s = t;
        return {};
      },
      "NUMBER in " + range);
}

CLI::Validator segment_name() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        try {
          Segment::validate_name(s);
        } catch (const std::exception& e) {
          return e.what();
        }
        return {};
      },
      "NAME");
}

bool is_segment_name(std::string_view name) {
  try {
    Segment::validate_name(name);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

CLI::Option* add_list_option(CLI::App* app, const std::string& flag, std::vector<std::string>& out,
                             const CLI::Validator& each, const std::string& help) {
  const CLI::Validator list(
      [each](std::string& s) -> std::string {
        // CLI11 drops the empty pieces of a delimited value, so the list is split here.
        std::size_t start = 0;
        for (int k = 1;; ++k) {
          const auto comma = s.find(',', start);
          std::string item =
              s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
          if (trim(item).empty()) {
            return "element " + std::to_string(k) + " of '" + s + "' is empty";
          }
          if (std::string why = each(item); !why.empty()) return why;
          if (comma == std::string::npos) return {};
          start = comma + 1;
        }
      },
      each.get_description() + "[,...]");
  return app->add_option(flag, out, help)->check(list);
}

std::vector<std::string> split_list(const std::vector<std::string>& given) {
  std::vector<std::string> out;
  for (const auto& s : given) {
    std::size_t start = 0;
    for (;;) {
      const auto comma = s.find(',', start);
      out.push_back(
          trim(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return out;
}

Hardcap hardcap_named(const std::string& name, const std::string& flag) {
  for (const Hardcap h : {Hardcap::kLimit, Hardcap::kOne, Hardcap::kNone}) {
    if (name == to_string(h)) return h;
  }
  throw UsageError(flag + ": expected limit, one or none, got '" + name + "'");
}

std::string hex_id(std::uint64_t id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(id));
  return buf;
}

bool pid_alive(std::int32_t pid) {
  if (pid <= 0) return false;
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

double age_seconds(std::int64_t created_realtime_ns) {
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return static_cast<double>(now - created_realtime_ns) / 1e9;
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: sleeps end early
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE})
    ::sigaction(sig, &sa, nullptr);
}

int stop_signal() {
  return g_stop_signal;
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGPIPE:
      return "SIGPIPE";
    default:
      return "signal";
  }
}

struct WarningLog::State {
  std::mutex mutex;
  std::vector<std::string> messages;
  LogHook previous;
};

WarningLog::WarningLog() : state_(std::make_shared<State>()) {
  std::weak_ptr<State> weak = state_;
  state_->previous = set_log_hook([weak](std::string_view m) {
    std::fprintf(stderr, "mpt: warning: %s\n", printable(m).c_str());
    if (auto st = weak.lock()) {
      std::lock_guard lock(st->mutex);
      st->messages.emplace_back(m);
    }
  });
}

WarningLog::~WarningLog() {
  set_log_hook(std::move(state_->previous));
}

std::vector<std::string> WarningLog::messages() const {
  std::lock_guard lock(state_->mutex);
  return state_->messages;
}

std::string dump_json(const nlohmann::json& j, bool pretty) noexcept {
  try {
    return j.dump(pretty ? 2 : -1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (...) {  // out of memory: nothing better to say
    return "{}";
  }
}

void print_json(const nlohmann::json& j, bool pretty) {
  std::cout << dump_json(j, pretty) << "\n" << std::flush;
}

namespace {

// The length of the valid UTF-8 sequence at s[i] (a lead byte >= 0x80), or 0: no overlong forms,
// no surrogates, nothing above U+10FFFF.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto at = [&](std::size_t k) -> unsigned {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u;
  };
  const auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) {
    return at(k) >= lo && at(k) <= hi;
  };
  const unsigned c = at(0);
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c == 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c == 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

}  // namespace

std::string printable(std::string_view s, bool keep_newlines) {
  std::string out;
  out.reserve(s.size());
  const auto escape = [&](char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
    out += buf;
  };
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      const bool control = c < 0x20 || c == 0x7f;
      if (control && !(keep_newlines && (c == '\n' || c == '\t'))) {
        escape(s[i]);
      } else {
        out += s[i];
      }
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) {
      escape(s[i]);
      ++i;
    } else if (n == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) {
      escape(s[i]);  // a C1 control (U+0080..U+009F): CSI is U+009B
      escape(s[i + 1]);
      i += 2;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace mpt::cli

namespace mpt {

void to_json(nlohmann::json& j, const HostIdentity& h) {
  j = {{"hostname", h.hostname},
       {"kernel", h.kernel},
       {"cpu_model", h.cpu_model},
       {"cores", h.cores},
       {"clocksource", h.clocksource}};
}

void to_json(nlohmann::json& j, const Rate& r) {
  j = {{"interval_s", r.interval_s}, {"rate_per_sec", r.rate_per_sec}};
}

void to_json(nlohmann::json& j, const Summary& s) {
  j = {{"runtime_s", s.runtime.count()},
       {"total", s.total},
       {"mean_interval_s", s.mean_interval_s},
       {"mean_rate_per_sec", s.mean_rate_per_sec}};
}

void to_json(nlohmann::json& j, const Snapshot& s) {
  j = nlohmann::json::object();
  j["id"] = cli::hex_id(s.id);
  j["name"] = s.name.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.name);
  j["max_n"] = s.max_n;
  j["per_s"] = s.per_s;
  j["rate_per_sec"] = s.per_s > 0 ? static_cast<double>(s.max_n) / s.per_s : 0.0;
  j["hardcap"] = to_string(s.hardcap);
  j["as_monitor"] = s.as_monitor;
  j["as_throttle"] = s.as_throttle;
  j["auto_emit"] = s.auto_emit;
  j["auto_calibrate"] = s.auto_calibrate;
  j["rf_rate_s"] = s.rf_rate_s;
  j["interval_ns"] = s.interval_ns;
  j["correction"] = s.correction;
  j["correction_source"] = s.correction_source;
  j["spin_lead_ns"] = s.spin_lead_ns;
  j["state"] = to_string(s.state);
  j["running"] = s.state == ThrottleState::kRunning;
  j["available"] = s.available;
  j["total"] = s.total;
  j["runtime_s"] = s.runtime_s;
  j["latest"] = s.latest;
  j["mean"] = s.mean;
  j["lo_hi"] = s.lo_hi;
  j["hi_lo"] = s.hi_lo;
  j["creator_pid"] = s.creator_pid;
  j["created_realtime_ns"] = s.created_realtime_ns;
}

void to_json(nlohmann::json& j, const SegmentInfo& s) {
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", s.mode);
  j = nlohmann::json::object();
  j["name"] = s.name;
  j["path"] = s.path;
  j["valid"] = s.valid;
  j["problem"] = s.valid ? nlohmann::json(nullptr) : nlohmann::json(s.problem);
  j["kind"] = s.valid ? to_string(s.kind) : "unknown";
  j["id"] = cli::hex_id(s.id);
  j["size_bytes"] = s.size_bytes;
  j["creator_pid"] = s.creator_pid;
  j["creator_alive"] = s.valid && cli::pid_alive(s.creator_pid);
  j["creator_uid"] = s.creator_uid;
  j["owner_uid"] = s.owner_uid;
  j["mode"] = mode;
  j["created_realtime_ns"] = s.created_realtime_ns;
  j["persistent"] = s.valid && s.persistent;
  j["age_s"] =
      s.valid ? nlohmann::json(cli::age_seconds(s.created_realtime_ns)) : nlohmann::json(nullptr);
}

}  // namespace mpt
