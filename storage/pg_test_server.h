// A throwaway PostgreSQL server for tests (scripts/postgres.sh): data in a
// temporary directory, listening on a free loopback port; one fresh
// database per test.
#ifndef DTMD_STORAGE_PG_TEST_SERVER_H_
#define DTMD_STORAGE_PG_TEST_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dtmd::storage {

class PgTestServer {
 public:
  // Starts a server (initdb on first start).
  static absl::StatusOr<std::unique_ptr<PgTestServer>> Start();
  // Stops the server and removes its directory.
  ~PgTestServer();

  // Stops (fast shutdown: clients are disconnected) / starts it again on
  // the same directory and port.
  absl::Status Stop();
  absl::Status Restart();
  // SIGSTOP (frozen) or SIGCONT every process of the server: connections
  // stay open and nothing answers, as with a hung server.
  absl::Status Freeze(bool frozen);

  // A new, empty database; returns its DSN.
  absl::StatusOr<std::string> CreateDatabase();
  // The DSN of database `name`.
  std::string Dsn(const std::string& name) const;
  // Runs `sql` on the database that `dsn` names.
  static absl::Status Exec(const std::string& dsn, const std::string& sql);

 private:
  PgTestServer(std::string dir, int port) : dir_(std::move(dir)), port_(port) {}
  absl::Status RunScript(const std::string& args) const;

  std::string dir_;
  int port_;
  int databases_ = 0;
};

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_PG_TEST_SERVER_H_
