// tools/mpt/main.cpp — the `mpt` command and its subcommands (each in a cmd_<name>.cpp).
//
// Exit codes: 0 success, 1 runtime error (the message names the segment), 2 usage error (the
// message names the flag or argument). CLI11's own parse errors are mapped to 2 as well. With
// --json anywhere on the command line, errors are printed as {"error": "..."} on stdout.
//
// No exception leaves main(): whatever a command throws becomes exit 1 (or 2) with a message.
// SIGPIPE is ignored, so a write to a closed pipe fails with EPIPE instead of killing mpt before
// its cleanup; stdout is line-buffered; and after every command, a failed write on stdout (a closed
// pipe, a full disk, /dev/full) is exit 1 with the reason on stderr.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
    if (scheme == std::string_view::npos) {
      // Not a URL, but it may be one mistyped ("redis:/user:pw@host/x"): hide what precedes '@'.
      if (const auto at = arg.rfind('@'); at != std::string_view::npos && at > 0) {
        const std::string_view secret = arg.substr(0, at);
        for (auto p = message.find(secret); p != std::string::npos; p = message.find(secret, p + 3))
          message.replace(p, secret.size(), "***");
      }
      continue;
    }
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

// "run, stat, ... or probe": the subcommands this mpt has, in the order --help lists them.
std::string subcommand_names(CLI::App& app) {
  const std::vector<CLI::App*> subs = app.get_subcommands([](CLI::App*) { return true; });
  std::string names;
  for (std::size_t i = 0; i < subs.size(); ++i) {
    if (i > 0) names += i + 1 == subs.size() ? " or " : ", ";
    names += subs[i]->get_name();
  }
  return names;
}

// Never throws: it runs inside catch blocks. No message carries a password (without_passwords).
int report_error(bool json, int code, const std::string& text) noexcept {
  try {
    const std::string message = without_passwords(text);
    if (json) {
      mpt::cli::print_json({{"error", message}});
    } else {
      std::cerr << "mpt: " << mpt::cli::printable(message) << "\n";
      if (code == mpt::cli::kExitUsage) std::cerr << "Run 'mpt --help' for usage.\n";
    }
  } catch (...) {
    std::fputs("mpt: an error occurred, and printing it failed\n", stderr);
  }
  return code;
}

// Exit 1 when stdout could not be written, whatever the command said.
int check_stdout(int code) noexcept {
  std::cout.flush();
  const bool cout_failed = std::cout.bad() || std::cout.fail();
  errno = 0;
  const bool flush_failed = std::fflush(stdout) != 0;
  const int e = errno;
  if (!flush_failed && !cout_failed && !std::ferror(stdout)) return code;
  std::fprintf(stderr, "mpt: cannot write to standard output%s%s\n", e != 0 ? ": " : "",
               e != 0 ? std::strerror(e) : "");
  return code == mpt::cli::kExitOk ? mpt::cli::kExitRuntime : code;
}

// Every subcommand: its options, and the CLI11 app and runner that use them. --help and the
// "expected ..." message list them in this order.
struct Commands {
  mpt::cli::RunOptions run;
  mpt::cli::StatOptions stat;
  mpt::cli::LsOptions ls;
  mpt::cli::RmOptions rm;
  mpt::cli::CreateCmdOptions create;
  mpt::cli::AcquireOptions acquire;
  mpt::cli::StartStopOptions start;
  mpt::cli::StartStopOptions stop;
  mpt::cli::ExportOptions export_;
  mpt::cli::CalibrateOptions calibrate;
  mpt::cli::BenchOptions bench;
  mpt::cli::ReportOptions report;
#ifdef MPT_HAVE_BPF
  mpt::cli::ProbeOptions probe;
#endif
  std::vector<std::pair<CLI::App*, std::function<int()>>> table;

  explicit Commands(CLI::App& app) {
    using namespace mpt::cli;
    add(setup_run(app, run), [this] { return run_run(run); });
    add(setup_stat(app, stat), [this] { return run_stat(stat); });
    add(setup_ls(app, ls), [this] { return run_ls(ls); });
    add(setup_rm(app, rm), [this] { return run_rm(rm); });
    add(setup_create(app, create), [this] { return run_create(create); });
    add(setup_acquire(app, acquire), [this] { return run_acquire(acquire); });
    add(setup_start(app, start), [this] { return run_start(start); });
    add(setup_stop(app, stop), [this] { return run_stop(stop); });
    add(setup_export(app, export_), [this] { return run_export(export_); });
    add(setup_calibrate(app, calibrate), [this] { return run_calibrate(calibrate); });
    add(setup_bench(app, bench), [this] { return run_bench(bench); });
    add(setup_report(app, report), [this] { return run_report(report); });
#ifdef MPT_HAVE_BPF
    add(setup_probe(app, probe), [this] { return run_probe(probe); });
#endif
  }
  Commands(const Commands&) = delete;
  Commands& operator=(const Commands&) = delete;

  void add(CLI::App* sub, std::function<int()> runner) {
    table.emplace_back(sub, std::move(runner));
  }
};

int run_mpt(int argc, char** argv, bool json) {
  using namespace mpt::cli;
  g_argc = argc;
  g_argv = argv;
  CLI::App app{"mpt: run, inspect and remove mpthrottle rate limiters in shared memory", "mpt"};
  app.require_subcommand(1, 1);
  app.failure_message(CLI::FailureMessage::simple);
  app.set_version_flag("--version", std::string(mpt_version()));
  Commands commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    if (argc > 1 && argv[1][0] != '-' && app.get_subcommands().empty()) {
      return report_error(
          json, kExitUsage,
          std::string("unknown subcommand '") + argv[1] + "'; expected " + subcommand_names(app));
    }
    return report_error(json, kExitUsage, e.what());
  }

  try {
    for (const auto& [sub, runner] : commands.table) {
      if (sub->parsed()) return runner();
    }
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

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) break;
    if (std::strcmp(argv[i], "--json") == 0) json = true;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // Line by line, also into a pipe: `mpt run ... | head -1` then learns at its next sample that
  // the reader is gone (EPIPE, SIGPIPE), not at the end of the run.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int code = mpt::cli::kExitRuntime;
  try {
    code = run_mpt(argc, argv, json);
  } catch (const std::exception& e) {
    code = report_error(json, mpt::cli::kExitRuntime, e.what());
  } catch (...) {
    code = report_error(json, mpt::cli::kExitRuntime, "unexpected error");
  }
  return check_stdout(code);
}
