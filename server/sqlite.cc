#include "server/sqlite.h"

#include "absl/status/statusor.h"

namespace sweep::server {

absl::Status SqliteError(sqlite3* db, int code, std::string_view operation) {
  std::string message = std::string(operation) +
                        " failed: " + (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code));
  switch (code & 0xff) {
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message + " (free disk space and retry)");
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
      return absl::FailedPreconditionError(message +
                                           " (check that the database file and its directory "
                                           "are writable)");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status Execute(sqlite3* db, std::string_view sql) {
  char* error = nullptr;
  const int code = sqlite3_exec(db, std::string(sql).c_str(), nullptr, nullptr, &error);
  if (code != SQLITE_OK) {
    sqlite3_free(error);
    return SqliteError(db, code, "executing \"" + std::string(sql.substr(0, 60)) + "\"");
  }
  return absl::OkStatus();
}

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  const int code = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &statement_, nullptr);
  if (code != SQLITE_OK) {
    prepare_status_ = SqliteError(db, code, "preparing \"" + std::string(sql) + "\"");
  }
}

Statement::~Statement() { sqlite3_finalize(statement_); }

Statement& Statement::Reset() {
  if (statement_ != nullptr) {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  return *this;
}

Statement& Statement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(statement_, index, value);
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  sqlite3_bind_double(statement_, index, value);
  return *this;
}

Statement& Statement::Bind(int index, std::string_view value) {
  sqlite3_bind_text(statement_, index, value.data(), static_cast<int>(value.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view value) {
  if (value.empty()) return BindNull(index);
  sqlite3_bind_blob(statement_, index, value.data(), static_cast<int>(value.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindNull(int index) {
  sqlite3_bind_null(statement_, index);
  return *this;
}

Statement& Statement::Bind(int index, std::optional<int64_t> value) {
  return value.has_value() ? Bind(index, *value) : BindNull(index);
}

absl::StatusOr<bool> Statement::Step() {
  if (!prepare_status_.ok()) return prepare_status_;
  const int code = sqlite3_step(statement_);
  if (code == SQLITE_ROW) return true;
  if (code == SQLITE_DONE) return false;
  absl::Status error =
      SqliteError(db_, code, std::string("running \"") + sqlite3_sql(statement_) + "\"");
  sqlite3_reset(statement_);
  return error;
}

absl::Status Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int64_t Statement::ColumnInt(int column) const { return sqlite3_column_int64(statement_, column); }

double Statement::ColumnDouble(int column) const {
  return sqlite3_column_double(statement_, column);
}

std::string Statement::ColumnText(int column) const {
  // Blob access keeps embedded NUL bytes, which serialized protocol buffers contain.
  const auto* bytes = static_cast<const char*>(sqlite3_column_blob(statement_, column));
  const int size = sqlite3_column_bytes(statement_, column);
  return bytes == nullptr ? std::string() : std::string(bytes, static_cast<size_t>(size));
}

bool Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(statement_, column) == SQLITE_NULL;
}

}  // namespace sweep::server
