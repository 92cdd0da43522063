// tools/mpt/cmd_ls.cpp — `mpt ls`: every mpthrottle segment in the segment directory. Files that
// are not segments (a bad header, a name no segment can have) are listed as invalid, with why.
// PERSIST: made to outlive its creator (`mpt create`), so ALIVE "no" is expected of it.
#include <cstdio>

#include "commands.hpp"
#include "common.hpp"

namespace mpt::cli {

CLI::App* setup_ls(CLI::App& app, LsOptions& opts) {
  CLI::App* cmd = app.add_subcommand("ls", "List mpthrottle segments ($MPT_SHM_DIR or /dev/shm)");
  cmd->add_flag("--json", opts.json, "print one JSON document");
  return cmd;
}

int run_ls(const LsOptions& opts) {
  const auto segments = Segment::list();
  if (opts.json) {
    print_json(
        {{"schema", kSchemaVersion}, {"directory", Segment::directory()}, {"segments", segments}});
    return kExitOk;
  }
  std::printf("%-24s %-9s %-18s %9s %8s %-5s %-7s %9s\n", "NAME", "KIND", "ID", "SIZE(B)", "PID",
              "ALIVE", "PERSIST", "AGE(s)");
  for (const auto& s : segments) {
    // Names and problems come from the directory: anyone who can write there chose the bytes.
    const std::string name = printable(s.name);
    if (!s.valid) {
      std::printf("%-24s %-9s %-18s %9llu %8s %-5s %-7s %9s  (%s)\n", name.c_str(), "invalid", "-",
                  static_cast<unsigned long long>(s.size_bytes), "-", "-", "-", "-",
                  printable(s.problem).c_str());
      continue;
    }
    std::printf("%-24s %-9s %-18s %9llu %8d %-5s %-7s %9.1f\n", name.c_str(), to_string(s.kind),
                hex_id(s.id).c_str(), static_cast<unsigned long long>(s.size_bytes), s.creator_pid,
                pid_alive(s.creator_pid) ? "yes" : "no", s.persistent ? "yes" : "no",
                age_seconds(s.created_realtime_ns));
  }
  return kExitOk;
}

}  // namespace mpt::cli
