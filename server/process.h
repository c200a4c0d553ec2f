// Process set-up shared by dtmd and the tools that run like it (dtmd-relay).
#ifndef DTMD_SERVER_PROCESS_H_
#define DTMD_SERVER_PROCESS_H_

#include <functional>
#include <string>

#include "absl/status/status.h"

namespace dtmd {

// Blocks SIGTERM, SIGINT and SIGHUP in every thread (call first, before any
// thread starts) so that WaitForTerminationSignal takes them, and ignores
// SIGPIPE.
void BlockTerminationSignals();

// Blocks until SIGTERM or SIGINT arrives; returns it. Each SIGHUP before
// that runs `on_hangup` (on this thread) if given, and is logged and
// otherwise ignored if not.
int WaitForTerminationSignal(const std::function<void()>& on_hangup = {});

// After flag parsing: glog to stderr, and absl's lock-order checking off
// (it costs a graph update per mutex on every lock and destruction; it is for
// debugging, not for serving).
void InitServerProcess(const char* argv0);

// Writes `port` to `path` through a temporary file and a rename, so that a
// reader never sees a partial file. INTERNAL if that fails.
// A `second_port` above 0 goes on a second line (dtmd's --health_port).
absl::Status WritePortFile(const std::string& path, int port,
                           int second_port = 0);

}  // namespace dtmd

#endif  // DTMD_SERVER_PROCESS_H_
