// Small helpers over libpq for PostgresStore: owned connections and
// results, statement parameters, array literals and the mapping of
// PostgreSQL errors to absl statuses.
#ifndef DTMD_STORAGE_POSTGRES_SUPPORT_H_
#define DTMD_STORAGE_POSTGRES_SUPPORT_H_

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dtmd::storage::pg {

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// The parameters of one statement: text values (NULL when unset), or
// binary ones (bytea) where `binary` is set.
class Params {
 public:
  Params& Text(std::string value);
  Params& Int(int64_t value);
  Params& Null();
  Params& Bytes(std::string value);
  // Optional text: NULL when not set.
  Params& MaybeText(const std::optional<std::string>& value);

  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return pointers_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }
  // The bytes the values take, for the write queue's bound and metrics.
  int64_t bytes() const { return bytes_; }

 private:
  void Add(std::optional<std::string> value, bool binary);

  std::vector<std::unique_ptr<std::string>> values_;
  std::vector<const char*> pointers_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  int64_t bytes_ = 0;
};

// Connects to dsn (a conninfo string or URI) once, waiting at most
// `timeout_s` seconds unless the DSN sets connect_timeout. UNAVAILABLE with
// libpq's message on failure.
absl::StatusOr<Conn> Connect(const std::string& dsn, int timeout_s);

// Whether the connection is (still) usable.
bool Usable(PGconn* conn);
// Usable, after reading what the server sent meanwhile without waiting (a
// server that shut down has closed the socket): finds a connection broken
// by a restart before a statement is sent on it.
bool CheckAlive(PGconn* conn);

// Runs one statement (no pipeline) and returns its result when it
// succeeded (PGRES_COMMAND_OK or PGRES_TUPLES_OK); the error otherwise
// (see ErrorOf).
absl::StatusOr<Result> Exec(PGconn* conn, const char* sql, const Params& params,
                            absl::string_view what);
// A statement without parameters (may hold several statements).
absl::Status ExecScript(PGconn* conn, const char* sql, absl::string_view what);

// The status of a failed statement: UNAVAILABLE when the connection broke or
// the server cannot take it now (shutdown, out of resources), ABORTED for a
// serialization failure, a deadlock or a lock timeout, INVALID_ARGUMENT for bad
// data, UNKNOWN otherwise. Never INTERNAL: that code means "restart the
// process".
absl::Status ErrorOf(PGconn* conn, const PGresult* result,
                     absl::string_view what);

// Field accessors of a text-format result.
std::string GetText(const PGresult* result, int row, int column);
int64_t GetInt(const PGresult* result, int row, int column);
bool IsNull(const PGresult* result, int row, int column);
// A bytea field (text format, hex).
std::string GetBytes(const PGresult* result, int row, int column);

// Array literals for text parameters ("{...}"), cast in SQL to text[],
// bigint[] or integer[]. Text elements lose NUL characters (PostgreSQL's
// text cannot hold them).
std::string TextArray(const std::vector<std::string>& values);
std::string IntArray(const std::vector<int64_t>& values);
// bytea[] as an array of hex strings, for decode(x, 'hex').
std::string HexArray(const std::vector<std::string>& values);

// Drops NUL characters (PostgreSQL's text cannot hold them).
std::string TextValue(absl::string_view value);

}  // namespace dtmd::storage::pg

#endif  // DTMD_STORAGE_POSTGRES_SUPPORT_H_
