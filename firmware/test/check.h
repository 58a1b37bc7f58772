// The host C++ tests' few lines of harness: CHECK counts a failure and goes on (so one run
// reports every broken case), runTests prints PASS/FAIL per test for the pytest side to read.
#pragma once

#include <stdio.h>

namespace check {

inline int failures = 0;

struct Test {
  const char* name;
  void (*fn)();
};

/// Runs every test, one PASS/FAIL line each; the exit code for main().
template <size_t N>
int runTests(const Test (&tests)[N]) {
  for (const Test& t : tests) {
    const int before = failures;
    t.fn();
    printf("%s %s\n", failures == before ? "PASS" : "FAIL", t.name);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace check

#define CHECK(cond)                                          \
  do {                                                       \
    if (!(cond)) {                                           \
      ++check::failures;                                     \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                        \
  } while (0)
