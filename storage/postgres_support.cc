#include "storage/postgres_support.h"

#include <poll.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"

namespace dtmd::storage::pg {

void Params::Add(std::optional<std::string> value, bool binary) {
  if (value.has_value()) {
    bytes_ += static_cast<int64_t>(value->size());
    values_.push_back(std::make_unique<std::string>(*std::move(value)));
    pointers_.push_back(values_.back()->c_str());
    lengths_.push_back(static_cast<int>(values_.back()->size()));
  } else {
    values_.push_back(nullptr);
    pointers_.push_back(nullptr);
    lengths_.push_back(0);
  }
  formats_.push_back(binary ? 1 : 0);
}

Params& Params::Text(std::string value) {
  Add(TextValue(value), false);
  return *this;
}
Params& Params::Int(int64_t value) {
  Add(absl::StrCat(value), false);
  return *this;
}
Params& Params::Null() {
  Add(std::nullopt, false);
  return *this;
}
Params& Params::Bytes(std::string value) {
  Add(std::move(value), true);
  return *this;
}
Params& Params::MaybeText(const std::optional<std::string>& value) {
  if (value.has_value()) return Text(*value);
  return Null();
}

absl::StatusOr<Conn> Connect(const std::string& dsn, int timeout_s) {
  const std::string timeout = absl::StrCat(timeout_s < 1 ? 1 : timeout_s);
  // Defaults first: what the DSN says overrides them. Keepalives (2 s idle,
  // then 3 probes 1 s apart) and tcp_user_timeout (data unacknowledged for
  // 6 s) find a server that vanished without closing the connection (a
  // partition, a dead host) in about 5 s, well within a lease: a replica cut
  // off answers UNAVAILABLE instead of hanging. A live server's kernel
  // answers keepalives, so a long query is never cut.
  const char* keywords[] = {"connect_timeout",
                            "application_name",
                            "keepalives",
                            "keepalives_idle",
                            "keepalives_interval",
                            "keepalives_count",
                            "tcp_user_timeout",
                            "dbname",
                            nullptr};
  const char* values[] = {timeout.c_str(), "dtmd",      "1",    "2", "1", "3",
                          "6000",          dsn.c_str(), nullptr};
  Conn conn(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
  if (conn == nullptr) {
    return absl::UnavailableError("PostgreSQL: out of memory connecting");
  }
  if (PQstatus(conn.get()) == CONNECTION_OK) {
    // Notices (e.g. "relation exists, skipping") go to the verbose log, not
    // to stderr.
    PQsetNoticeProcessor(
        conn.get(),
        [](void*, const char* message) {
          VLOG(1) << "PostgreSQL: "
                  << absl::StripTrailingAsciiWhitespace(message);
        },
        nullptr);
  } else {
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to PostgreSQL: ",
        absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn.get()))));
  }
  return conn;
}

bool Usable(PGconn* conn) {
  return conn != nullptr && PQstatus(conn) == CONNECTION_OK;
}

bool CheckAlive(PGconn* conn) {
  if (!Usable(conn)) return false;
  pollfd fd{PQsocket(conn), POLLIN, 0};
  if (fd.fd < 0) return false;
  if (poll(&fd, 1, 0) > 0) {
    if (PQconsumeInput(conn) == 0) return false;
    // Drop whatever came (a notice, an error before the close).
    while (!PQisBusy(conn)) {
      PGresult* result = PQgetResult(conn);
      if (result == nullptr) break;
      PQclear(result);
    }
  }
  return Usable(conn);
}

absl::Status ErrorOf(PGconn* conn, const PGresult* result,
                     absl::string_view what) {
  std::string message;
  const char* sqlstate = nullptr;
  if (result != nullptr) {
    message = PQresultErrorMessage(result);
    sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  }
  if (message.empty() && conn != nullptr) message = PQerrorMessage(conn);
  const std::string text = absl::StrCat(
      what, ": ", absl::StripTrailingAsciiWhitespace(message),
      sqlstate != nullptr ? absl::StrCat(" (SQLSTATE ", sqlstate, ")") : "");
  const absl::string_view state = sqlstate == nullptr ? "" : sqlstate;
  if (!Usable(conn) || state.empty() || absl::StartsWith(state, "08") ||
      absl::StartsWith(state, "53") || absl::StartsWith(state, "57") ||
      absl::StartsWith(state, "58")) {
    return absl::UnavailableError(text);
  }
  // Serialization failure, deadlock; a lock not available (lock_timeout).
  if (absl::StartsWith(state, "40") || state == "55P03") {
    return absl::AbortedError(text);
  }
  // Bad data; a value over a limit (an index entry too large).
  if (absl::StartsWith(state, "22") || absl::StartsWith(state, "54")) {
    return absl::InvalidArgumentError(text);
  }
  return absl::UnknownError(text);
}

absl::StatusOr<Result> Exec(PGconn* conn, const char* sql, const Params& params,
                            absl::string_view what) {
  Result result(PQexecParams(conn, sql, params.size(), nullptr, params.values(),
                             params.lengths(), params.formats(),
                             /*resultFormat=*/0));
  const ExecStatusType status =
      result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return ErrorOf(conn, result.get(), what);
  }
  return result;
}

absl::Status ExecScript(PGconn* conn, const char* sql, absl::string_view what) {
  Result result(PQexec(conn, sql));
  const ExecStatusType status =
      result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return ErrorOf(conn, result.get(), what);
  }
  return absl::OkStatus();
}

std::string GetText(const PGresult* result, int row, int column) {
  return std::string(PQgetvalue(result, row, column),
                     PQgetlength(result, row, column));
}

int64_t GetInt(const PGresult* result, int row, int column) {
  if (PQgetisnull(result, row, column)) return 0;
  return std::strtoll(PQgetvalue(result, row, column), nullptr, 10);
}

bool IsNull(const PGresult* result, int row, int column) {
  return PQgetisnull(result, row, column) != 0;
}

std::string GetBytes(const PGresult* result, int row, int column) {
  if (PQgetisnull(result, row, column)) return "";
  size_t length = 0;
  unsigned char* bytes = PQunescapeBytea(
      reinterpret_cast<const unsigned char*>(PQgetvalue(result, row, column)),
      &length);
  if (bytes == nullptr) return "";
  std::string out(reinterpret_cast<const char*>(bytes), length);
  PQfreemem(bytes);
  return out;
}

std::string TextValue(absl::string_view value) {
  if (value.find('\0') == absl::string_view::npos) return std::string(value);
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c != '\0') out.push_back(c);
  }
  return out;
}

std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : values[i]) {
      if (c == '\0') continue;
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

std::string IntArray(const std::vector<int64_t>& values) {
  return absl::StrCat("{", absl::StrJoin(values, ","), "}");
}

std::string HexArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    out += absl::BytesToHexString(values[i]);
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

}  // namespace dtmd::storage::pg
