// tools/mpt/main.cpp — the `mpt` command: run, stat, ls, rm, calibrate, report, probe.
//
// Exit codes: 0 success, 1 runtime error (the message names the segment), 2 usage error (the
// message names the flag or argument). CLI11's own parse errors are mapped to 2 as well. With
// --json anywhere on the command line, errors are printed as {"error": "..."} on stdout.
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>

#include "commands.hpp"
#include "common.hpp"
#include "mpt/error.hpp"
#include "mpt/mpt.h"

namespace {

int g_argc = 0;
char** g_argv = nullptr;

// CLI11 quotes arguments in some errors ("The following argument was not expected: ..."): any
// URL among them is shown as mpt::redact_url() shows it, so that no message carries a password.
std::string without_passwords(std::string message) {
  for (int i = 1; i < g_argc; ++i) {
    std::string_view arg = g_argv[i];
    const auto scheme = arg.find("://");
    if (scheme == std::string_view::npos) continue;
    if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq < scheme) {
      arg = arg.substr(eq + 1);  // --backend=URL
    }
    const std::string shown = mpt::redact_url(arg);
    for (auto p = message.find(arg); p != std::string::npos; p = message.find(arg, p + 1)) {
      message.replace(p, arg.size(), shown);
    }
    // The user info alone, wherever it is quoted.
    const auto at = arg.rfind('@');
    const auto from = arg.find("://") + 3;
    if (at != std::string_view::npos && at > from) {
      const std::string_view secret = arg.substr(from, at - from);
      for (auto p = message.find(secret); p != std::string::npos; p = message.find(secret, p + 3))
        message.replace(p, secret.size(), "***");
    }
  }
  return message;
}

int report_error(bool json, int code, const std::string& text) {
  const std::string message = without_passwords(text);
  if (json) {
    mpt::cli::print_json({{"error", message}});
  } else {
    std::cerr << "mpt: " << message << "\n";
    if (code == mpt::cli::kExitUsage) std::cerr << "Run 'mpt --help' for usage.\n";
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mpt::cli;
  g_argc = argc;
  g_argv = argv;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) break;
    if (std::strcmp(argv[i], "--json") == 0) json = true;
  }

  CLI::App app{"mpt: run, inspect and remove mpthrottle rate limiters in shared memory", "mpt"};
  app.require_subcommand(1, 1);
  app.failure_message(CLI::FailureMessage::simple);
  app.set_version_flag("--version", std::string(mpt_version()));
  RunOptions run_opts;
  StatOptions stat_opts;
  LsOptions ls_opts;
  RmOptions rm_opts;
  CalibrateOptions calibrate_opts;
  ReportOptions report_opts;
  CLI::App* run = setup_run(app, run_opts);
  CLI::App* stat = setup_stat(app, stat_opts);
  CLI::App* ls = setup_ls(app, ls_opts);
  CLI::App* rm = setup_rm(app, rm_opts);
  CLI::App* calibrate = setup_calibrate(app, calibrate_opts);
  CLI::App* report = setup_report(app, report_opts);
#ifdef MPT_HAVE_BPF
  ProbeOptions probe_opts;
  CLI::App* probe = setup_probe(app, probe_opts);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    if (argc > 1 && argv[1][0] != '-' && app.get_subcommands().empty()) {
      return report_error(json, kExitUsage,
                          std::string("unknown subcommand '") + argv[1] +
                              "'; expected run, stat, ls, rm, calibrate, report or probe");
    }
    return report_error(json, kExitUsage, e.what());
  }

  try {
    if (run->parsed()) return run_run(run_opts);
    if (stat->parsed()) return run_stat(stat_opts);
    if (ls->parsed()) return run_ls(ls_opts);
    if (rm->parsed()) return run_rm(rm_opts);
    if (calibrate->parsed()) return run_calibrate(calibrate_opts);
    if (report->parsed()) return run_report(report_opts);
#ifdef MPT_HAVE_BPF
    if (probe->parsed()) return run_probe(probe_opts);
#endif
    return report_error(json, kExitUsage, "a subcommand is required");
  } catch (const UsageError& e) {
    return report_error(json, kExitUsage, e.what());
  } catch (const CLI::ParseError& e) {
    return report_error(json, kExitUsage, e.what());
  } catch (const mpt::InvalidArgument& e) {
    return report_error(json, kExitUsage, e.what());
  } catch (const std::exception& e) {
    return report_error(json, kExitRuntime, e.what());
  }
}
