// Workers that die with their parent (lib/src/mp/child_process.hpp).
#include "child_process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "../test_util.hpp"

namespace mpt::detail {
namespace {

// A harness process (a subreaper, so that orphans come back to it) forks a parent, which forks a
// child with fork_dying_with_parent(); the parent is killed with SIGKILL; the child must die too.
TEST(ForkDyingWithParentTest, TheChildDiesWhenItsParentIsKilled) {
  const pid_t harness = ::fork();
  if (harness == 0) {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    int fds[2];
    if (::pipe(fds) != 0) ::_exit(10);
    const pid_t parent = ::fork();
    if (parent == 0) {
      const pid_t child = fork_dying_with_parent();
      if (child == 0) {
        for (;;)
          ::pause();
      }
      if (::write(fds[1], &child, sizeof child) != sizeof child) ::_exit(1);
      for (;;)
        ::pause();
    }
    pid_t child = 0;
    if (::read(fds[0], &child, sizeof child) != sizeof child) ::_exit(11);
    ::kill(parent, SIGKILL);
    ::waitpid(parent, nullptr, 0);
    // The child is ours now; it must end by SIGKILL within the bound.
    const int rc = test::wait_child(child, std::chrono::seconds(5));
    ::_exit(rc == 128 + SIGKILL ? 0 : 12);
  }
  EXPECT_EQ(test::wait_child(harness, std::chrono::seconds(10)), 0);
}

}  // namespace
}  // namespace mpt::detail
