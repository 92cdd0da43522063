// tools/mpt/cmd_calibrate_show.cpp — what `mpt calibrate` prints: a calibration in words or JSON
// (--show, and the result of a run), this host's identity (--host), and the file --if-needed found
// in force. Every string from a file goes through printable(): --show prints what any file says.
#include <cstdio>
#include <optional>

#include "cmd_calibrate.hpp"
#include "common.hpp"
#include "mpt/error.hpp"

namespace mpt::cli::calib {

namespace {

std::string lateness_words(const LatenessStats& l) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "p50 %.1f us, p99 %.1f us, max %.1f us (%lld samples)", l.p50_us,
                l.p99_us, l.max_us, static_cast<long long>(l.samples));
  return buf;
}

void print_words(const Calibration& c, const std::string& path) {
  std::printf("calibration %s\n", printable(path).c_str());
  print_host_words(c.host);
  std::printf("  made        %s by mpthrottle %s%s; ground truth: %s; %d workers, %g s per trial\n",
              printable(c.created_utc).c_str(), printable(c.tool_version).c_str(),
              c.quick ? " (--quick)" : "",
              c.ground_truth == "ebpf" ? "the kernel's count (eBPF)" : "the monitor's timestamps",
              c.workers, c.seconds);
  std::printf("  futex wait  late by %s\n", lateness_words(c.futex_lateness).c_str());
  std::printf("  nanosleep   late by %s\n", lateness_words(c.nanosleep_lateness).c_str());
  std::printf("  spin lead   %.1f us\n", static_cast<double>(c.spin_lead_ns) / 1e3);
  for (const auto& t : c.spin_lead_trials) {
    std::printf("    lead %7.1f us: late by p99 %7.1f us, %6.1f us CPU per wait\n",
                static_cast<double>(t.spin_lead_ns) / 1e3, t.lateness.p99_us, t.cpu_us_per_wait);
  }
  std::printf("  %-6s %10s %12s %12s %12s %10s %12s\n", "HARDCAP", "RATE/s", "UNCORRECTED",
              "CORRECTION", "VERIFIED", "MAX/WINDOW", "CPU/GRANT");
  for (const auto& b : c.bands) {
    std::printf("  %-6s %10g %+11.3f%% %12.6f %+11.3f%% %10llu %12s\n", to_string(b.hardcap),
                b.rate_per_sec, b.uncorrected.rel_error * 100, b.correction,
                b.verified.rel_error * 100,
                static_cast<unsigned long long>(b.verified.max_in_window),
                cpu_per_grant_words(b.verified.cpu_us_per_grant).c_str());
  }
}

}  // namespace

std::string cpu_per_grant_words(const std::optional<double>& us) {
  if (!us) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f us", *us);
  return buf;
}

// A host's identity on one line, after "  host        ".
void print_host_words(const HostIdentity& h) {
  std::printf("  host        %s, kernel %s, %s, %d cores, clocksource %s\n",
              printable(h.hostname).c_str(), printable(h.kernel).c_str(),
              printable(h.cpu_model).c_str(), h.cores, printable(h.clocksource).c_str());
}

int show(const CalibrateOptions& o, const std::string& path) {
  std::string why;
  std::optional<Calibration> c = Calibration::load(path, &why);
  std::string note;
  if (!c) {
    // Show a file from another host too, saying so; anything else is an error (a missing,
    // unreadable, oversized or corrupt file, or one that is not a regular file).
    try {
      c = Calibration::from_file(path);
    } catch (const InvalidArgument& e) {  // a bad field: exit 1, not a usage error
      throw std::runtime_error("calibration file " + path + ": " + e.what());
    }
    note = why;
  }
  if (o.json) {
    nlohmann::json j;
    j["path"] = path;
    j["in_force"] = note.empty();
    if (!note.empty()) j["ignored_because"] = note;
    j["calibration"] = nlohmann::json::parse(c->to_json());
    print_json(j);
  } else {
    print_words(*c, path);
    if (!note.empty()) std::printf("  NOT IN FORCE: %s\n", printable(note).c_str());
  }
  return kExitOk;
}

// --host: this host's identity, the one a calibration file must match (scripts/bench takes the
// report's host from it).
int show_host(const CalibrateOptions& o) {
  const HostIdentity h = HostIdentity::current();
  if (o.json) {
    print_json({{"host", h}});
  } else {
    std::printf("this host, as a calibration file must match it:\n");
    print_host_words(h);
  }
  return kExitOk;
}

void print_result(const CalibrateOptions& o, const Calibration& c, const std::string& path,
                  bool written, const std::string& because) {
  if (o.json) {
    nlohmann::json j;
    j["path"] = path;
    j["written"] = written;
    if (o.if_needed) {
      j["measured"] = true;
      j["measured_because"] = because;
    }
    j["calibration"] = nlohmann::json::parse(c.to_json());
    print_json(j);
  } else {
    print_words(c, path);
    std::printf(written ? "  written to %s\n" : "  --dry-run: nothing written to %s\n",
                printable(path).c_str());
  }
}

int print_in_force(const CalibrateOptions& o, const Calibration& c, const std::string& path) {
  if (o.json) {
    print_json({{"path", path},
                {"in_force", true},
                {"measured", false},
                {"written", false},
                {"created_utc", c.created_utc},
                {"quick", c.quick}});
  } else {
    std::printf("calibration %s is in force on this host (made %s%s): nothing measured\n",
                printable(path).c_str(), printable(c.created_utc).c_str(),
                c.quick ? " by --quick" : "");
  }
  return kExitOk;
}

}  // namespace mpt::cli::calib
