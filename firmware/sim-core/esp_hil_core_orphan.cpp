// An instance whose harness died (killed with SIGKILL, a crashed pytest) powers itself off,
// as our own shim does: otherwise it would keep its 127.0.0.N ports while the address lock
// is free again, and the next instance given that address would share them (the mock's
// servers set SO_REUSEPORT). The mock's main loop has no hook, so a timer signal checks.
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

namespace {

constexpr int kExitOrphaned = 4;  // the exit code of firmware/sim's orphan check
constexpr long kCheckEveryUs = 200000;

pid_t g_parent;

void check_parent(int) {
  if (getppid() != g_parent) _exit(kExitOrphaned);
}

struct OrphanWatch {
  OrphanWatch() {
    g_parent = getppid();
    struct sigaction sa {};
    sa.sa_handler = check_parent;
    sa.sa_flags = SA_RESTART;  // the mock's reads and polls carry on after each check
    sigaction(SIGALRM, &sa, nullptr);
    const itimerval every{{0, kCheckEveryUs}, {0, kCheckEveryUs}};
    setitimer(ITIMER_REAL, &every, nullptr);
  }
};

const OrphanWatch g_watch;

}  // namespace
