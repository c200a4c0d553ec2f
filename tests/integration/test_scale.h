// Load and time bounds of the process-level tests, scaled for the build: the
// sanitizers slow dtmd several times over on a loaded 2-core machine.
// tests/CMakeLists.txt compiles the tests that include this header with
// DTMD_SANITIZED_BUILD in the sanitizer build.
#ifndef DTMD_TESTS_INTEGRATION_TEST_SCALE_H_
#define DTMD_TESTS_INTEGRATION_TEST_SCALE_H_

#include <cstdlib>

#include "absl/time/time.h"

namespace dtmd::testing {

#ifdef DTMD_SANITIZED_BUILD
inline constexpr bool kSanitizedBuild = true;
#else
inline constexpr bool kSanitizedBuild = false;
#endif

// The unit of generous bounds: 1 s, 4 s under the sanitizers.
inline absl::Duration Slowness() {
  return absl::Seconds(kSanitizedBuild ? 4 : 1);
}

// The integer in environment variable `name` (a knob for longer soak runs),
// or `fallback` when it is unset or empty.
inline int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_TEST_SCALE_H_
