#include "storage/pg_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/postgres_support.h"

#ifndef DTMD_SOURCE_DIR
#error "DTMD_SOURCE_DIR must name the source directory"
#endif

namespace dtmd::storage {
namespace {

// A loopback port nobody listens on now.
absl::StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return absl::InternalError("bind");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgTestServer>> PgTestServer::Start() {
  std::string base =
      (std::filesystem::temp_directory_path() / "dtmd_pg_XXXXXX").string();
  if (mkdtemp(base.data()) == nullptr) {
    return absl::InternalError("mkdtemp failed");
  }
  // The server may run as another user (postgres, when we are root).
  chmod(base.c_str(), 0755);
  absl::StatusOr<int> port = FreePort();
  if (!port.ok()) return port.status();
  std::unique_ptr<PgTestServer> server(new PgTestServer(base + "/pg", *port));
  if (absl::Status s = server->Restart(); !s.ok()) return s;
  return server;
}

PgTestServer::~PgTestServer() {
  (void)Stop();
  std::error_code ignored;
  std::filesystem::remove_all(std::filesystem::path(dir_).parent_path(),
                              ignored);
}

absl::Status PgTestServer::RunScript(const std::string& args) const {
  const std::string command = absl::StrCat(
      DTMD_SOURCE_DIR, "/scripts/postgres.sh ", args, " >", dir_, ".out 2>&1");
  const int rc = std::system(command.c_str());
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("`", command, "` failed (", rc, "); see ", dir_, ".out"));
  }
  return absl::OkStatus();
}

absl::Status PgTestServer::Stop() { return RunScript("stop " + dir_); }

absl::Status PgTestServer::Restart() {
  return RunScript(absl::StrCat("start ", dir_, " ", port_));
}

absl::Status PgTestServer::Freeze(bool frozen) {
  // The postmaster's pid is the first line of postmaster.pid; its children
  // are the backends and the server's own processes.
  const std::string signal = frozen ? "STOP" : "CONT";
  const std::string pid =
      absl::StrCat("$(head -1 '", dir_, "/data/postmaster.pid')");
  const std::string cmd = absl::StrCat("kill -", signal, " ", pid,
                                       " && pkill -", signal, " -P ", pid);
  if (system(cmd.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot ", signal, " PostgreSQL"));
  }
  return absl::OkStatus();
}

std::string PgTestServer::Dsn(const std::string& name) const {
  return absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/", name);
}

absl::StatusOr<std::string> PgTestServer::CreateDatabase() {
  const std::string name = absl::StrCat("t_", ++databases_);
  if (absl::Status s = Exec(Dsn("postgres"), "CREATE DATABASE " + name);
      !s.ok()) {
    return s;
  }
  return Dsn(name);
}

absl::Status PgTestServer::Exec(const std::string& dsn,
                                const std::string& sql) {
  absl::StatusOr<pg::Conn> conn = pg::Connect(dsn, 10);
  if (!conn.ok()) return conn.status();
  return pg::ExecScript(conn->get(), sql.c_str(), "test SQL");
}

}  // namespace dtmd::storage
