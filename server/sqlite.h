#ifndef SWEEP_SERVER_SQLITE_H_
#define SWEEP_SERVER_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sweep::server {

// A prepared statement, reset on destruction of each use. Not thread-safe.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Status of preparation; a failed statement fails every Step.
  const absl::Status& prepare_status() const { return prepare_status_; }

  // Clears bindings and resets for a new execution.
  Statement& Reset();
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view value);
  Statement& BindNull(int index);
  // Binds bytes as a BLOB; empty binds NULL.
  Statement& BindBlob(int index, std::string_view value);
  Statement& Bind(int index, std::optional<int64_t> value);

  // Advances one row: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion, expecting no rows.
  absl::Status Run();

  int64_t ColumnInt(int column) const;
  double ColumnDouble(int column) const;
  std::string ColumnText(int column) const;
  bool ColumnIsNull(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* statement_ = nullptr;
  absl::Status prepare_status_;
};

// Maps an SQLite result code to a status: SQLITE_FULL becomes RESOURCE_EXHAUSTED,
// SQLITE_READONLY and SQLITE_CANTOPEN FAILED_PRECONDITION, SQLITE_BUSY UNAVAILABLE and
// anything else INTERNAL. The message names the operation and SQLite's error text.
absl::Status SqliteError(sqlite3* db, int code, std::string_view operation);

// Runs one or more statements that return no rows.
absl::Status Execute(sqlite3* db, std::string_view sql);

}  // namespace sweep::server

#endif  // SWEEP_SERVER_SQLITE_H_
