// lib/src/mp/child_process.hpp — fork a worker that dies with its parent. Internal: the library's
// Process uses it for daemon children (and so ProcessGroup, `mpt run`, `mpt calibrate`'s trials
// and the benchmarks); not part of the installed API.
//
// PR_SET_PDEATHSIG SIGKILL makes the kernel kill the child when the *thread* that forked it ends,
// however it ends (SIGKILL included). Asked for in the child right after fork(), it races with a
// parent that dies first: the child then checks getppid() against the parent's pid taken before
// the fork, and kills itself if its parent already changed.
#pragma once

#include <sys/types.h>

namespace mpt::detail {

// fork_dying_with_parent()
// fork(), then in the child die_with_parent() before anything else. Returns as fork() does (-1
// with errno set on failure). Flush stdio first, as for any fork, and call it from a thread that
// lives as long as the children should. Safe for concurrent use by threads.
pid_t fork_dying_with_parent() noexcept;

// die_with_parent()
// In a child just forked by the process whose pid was `parent`: what fork_dying_with_parent()
// does in the child, for code that forks itself (Process::start, for daemon children only).
// Does not return if the parent is already gone.
void die_with_parent(pid_t parent) noexcept;

}  // namespace mpt::detail
