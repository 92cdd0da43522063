// lib/src/safe_file.hpp — how mpthrottle writes and reads the files a user names (calibration
// files, `mpt report` pages, anything later).
// Internal: the library and the `mpt` tools use it (they link mpthrottle_internal); it is not part
// of the installed API.
//
// Writing. A directory such as /tmp is shared with other users, who can plant a name there before
// we write it (a symlink to a file of ours, a FIFO, a device node). So a file is never opened by a
// name anyone can predict: write_file_atomically() creates a new file under a random name in the
// target's directory with O_CREAT|O_EXCL|O_NOFOLLOW (a planted name fails, and another random one
// is tried), writes and fsyncs it, then renames it over the target and fsyncs the directory. A
// reader sees the old file or the new one, never half of one, and a failure leaves the old file as
// it was. The target itself must be a regular file or absent: a symlink is refused (renaming would
// replace the link, and writing through it is what an attacker wants), and so is anything else (a
// device, a FIFO, a directory: `--output /dev/null` must not replace /dev/null).
//
// Reading. read_file_capped() reads a regular file or a pipe, at most `max_bytes`; anything else
// (a device such as /dev/zero, a directory) is refused, and a larger file is an error that says
// "larger than N bytes" instead of a read that never ends.
//
// Errors are mpt::SystemError (a subclass of SegmentError; code() kSystem, sys_errno() the errno:
// ELOOP for a symlink, EINVAL for a file that is not regular, EFBIG for one too large), or NotFound
// when the file to read does not exist. Each message names the file.
//
// Safe for concurrent use by threads: the functions keep no state. Two processes writing the same
// target at once each produce a whole file; the last rename wins.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace mpt::detail {

struct AtomicWriteOptions {
  // A new file's permission bits, set with fchmod (the umask does not apply); a file that is
  // replaced keeps its own.
  mode_t mode = 0644;
  // Create missing parent directories (mode 0755 less the umask) first.
  bool create_parents = false;
  // Runs after the data is synced and before the rename, with the temporary file's path. If it
  // throws, the temporary file is removed, the target is left as it was, and its exception
  // propagates.
  std::function<void(const std::filesystem::path& temp)> before_rename;
};

// write_file_atomically()
// Replaces (or creates) `path` with `bytes`, as the banner says. Blocks on disk I/O (fsync).
// Throws SystemError naming `path` (what failed and why); nothing is left behind but the old file.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes,
                           const AtomicWriteOptions& options = {});

// check_replaceable()
// Throws what write_file_atomically(path, ...) would for its target: SystemError when `path`
// exists and is a symlink or not a regular file. Lets a command refuse before long work (`mpt
// calibrate --output /dev/null`); write_file_atomically() checks again itself.
void check_replaceable(const std::filesystem::path& path);

// read_file_capped()
// The whole content of the regular file or pipe at `path`, if it has at most `max_bytes`. Follows
// symlinks (reading through one harms nothing). Blocks while a pipe's writer has not finished.
// Throws NotFound when absent, SystemError otherwise ("is not a regular file", "is larger than N
// bytes", or the errno of a failed open or read). Messages name the file as `what` and the path
// ("calibration file /x.json does not exist"), or as the path alone when `what` is empty.
std::string read_file_capped(const std::filesystem::path& path, std::size_t max_bytes,
                             std::string_view what = {});

}  // namespace mpt::detail
