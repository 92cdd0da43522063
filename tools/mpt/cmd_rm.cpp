// tools/mpt/cmd_rm.cpp — `mpt rm NAME...` and `mpt rm --stale`.
//
// A segment is stale when its creator is gone (kill(pid, 0) fails with ESRCH) and no living
// process maps it: no line of any /proc/PID/maps names its device and inode. (The inode, not the
// path: a creator maps the file before it has a name, so its maps show "/dev/shm/#123 (deleted)".)
// Segments whose header is invalid, and files whose name no segment can have (planted by hand:
// "mpt.a b"), and persistent segments (made to outlive their creator: `mpt create`,
// CreateOptions::persist; the header records it), are never removed by --stale: they are listed
// as kept, with why. Removing only
// unlinks the name; a process that attaches between the check and the unlink keeps working.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#include "commands.hpp"
#include "common.hpp"
#include "mpt/error.hpp"

namespace mpt::cli {

namespace {

using FileId = std::pair<unsigned long long, unsigned long long>;  // (dev, inode)

// Every file mapped by any process we can read the maps of.
std::set<FileId> mapped_files() {
  std::set<FileId> out;
  DIR* proc = ::opendir("/proc");
  if (!proc) return out;
  while (dirent* ent = ::readdir(proc)) {
    const char* n = ent->d_name;
    if (*n < '0' || *n > '9') continue;
    std::ifstream maps(std::string("/proc/") + n + "/maps");
    std::string line;
    while (std::getline(maps, line)) {
      unsigned long long lo, hi, offset, inode;
      unsigned dev_major, dev_minor;
      char perms[8];
      if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu", &lo, &hi, perms, &offset,
                      &dev_major, &dev_minor, &inode) == 7 &&
          inode != 0) {
        out.insert({static_cast<unsigned long long>(::makedev(dev_major, dev_minor)), inode});
      }
    }
  }
  ::closedir(proc);
  return out;
}

}  // namespace

CLI::App* setup_rm(CLI::App& app, RmOptions& opts) {
  CLI::App* cmd = app.add_subcommand("rm", "Remove named segments, or every stale one");
  auto* names = cmd->add_option("NAME", opts.names, "segment names")->check(segment_name());
  auto* stale =
      cmd->add_flag("--stale", opts.stale,
                    "remove segments whose creator is gone and that no process maps (never a "
                    "persistent one, as mpt create makes)");
  names->excludes(stale);
  cmd->add_flag("--dry-run", opts.dry_run, "with --stale: only say what would be removed");
  cmd->add_flag("--json", opts.json, "print one JSON document");
  return cmd;
}

int run_rm(const RmOptions& opts) {
  if (opts.names.empty() && !opts.stale) throw UsageError("rm: give NAME... or --stale");
  if (opts.dry_run && !opts.stale) throw UsageError("rm: --dry-run needs --stale");

  nlohmann::json removed = nlohmann::json::array();
  nlohmann::json kept = nlohmann::json::array();
  nlohmann::json failed = nlohmann::json::array();
  auto remove_one = [&](const std::string& name) {
    try {
      if (!opts.dry_run) Segment::remove(name);
      removed.push_back(name);
      if (!opts.json)
        std::printf("%s %s\n", opts.dry_run ? "would remove" : "removed", printable(name).c_str());
    } catch (const std::exception& e) {  // one name's failure never ends the others
      failed.push_back({{"name", name}, {"error", e.what()}});
      if (!opts.json) std::fprintf(stderr, "mpt: %s\n", printable(e.what()).c_str());
    }
  };

  if (opts.stale) {
    const std::set<FileId> mapped = mapped_files();
    for (const auto& s : Segment::list()) {
      std::string reason;
      struct stat st;
      if (!is_segment_name(s.name)) {
        reason = "not a segment name (" + s.problem + "); remove the file by hand";
      } else if (!s.valid) {
        reason = "invalid segment (" + s.problem + "); remove it by name";
      } else if (s.persistent) {
        reason = "persistent (made to outlive its creator, as by mpt create); remove it by name";
      } else if (pid_alive(s.creator_pid)) {
        reason = "creator pid " + std::to_string(s.creator_pid) + " is alive";
      } else if (::stat(s.path.c_str(), &st) != 0) {
        continue;  // gone meanwhile
      } else if (mapped.count({static_cast<unsigned long long>(st.st_dev),
                               static_cast<unsigned long long>(st.st_ino)})) {
        reason = "mapped by a living process";
      }
      if (reason.empty()) {
        remove_one(s.name);
      } else {
        kept.push_back({{"name", s.name}, {"reason", reason}});
        if (!opts.json) {
          std::printf("kept %s: %s\n", printable(s.name).c_str(), printable(reason).c_str());
        }
      }
    }
  } else {
    for (const auto& name : opts.names)
      remove_one(name);
  }

  if (opts.json) {
    nlohmann::json doc = {{"schema", kSchemaVersion},
                          {"dry_run", opts.dry_run},
                          {"removed", removed},
                          {"kept", kept},
                          {"failed", failed}};
    if (!failed.empty()) doc["error"] = failed[0]["error"];
    print_json(doc);
  }
  return failed.empty() ? kExitOk : kExitRuntime;
}

}  // namespace mpt::cli
