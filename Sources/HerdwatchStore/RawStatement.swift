import GRDB
import GRDBSQLite

/// Binds values in order to one of GRDB's prepared statements through SQLite's C API, then runs
/// it. Ingest binds some twenty values per event; `StatementArguments` would box each of them.
struct RawStatement {
    private let handle: SQLiteStatement
    private let connection: SQLiteConnection?
    private var index: CInt = 0

    /// SQLite copies what it is given (SQLITE_TRANSIENT).
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ db: Database, _ statement: Statement) throws {
        handle = statement.sqliteStatement
        connection = db.sqliteConnection
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    mutating func bind(_ number: Int64) {
        index += 1
        sqlite3_bind_int64(handle, index, number)
    }

    mutating func bind(_ text: String) {
        index += 1
        var text = text
        text.withUTF8 { bytes in
            // A null pointer would bind NULL.
            guard bytes.count > 0 else { return _ = sqlite3_bind_text(handle, index, "", 0, nil) }
            _ = sqlite3_bind_text(handle, index, UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self), CInt(bytes.count), Self.transient)
        }
    }

    mutating func bind(bytes: [UInt8]) {
        index += 1
        bytes.withUnsafeBytes { _ = sqlite3_bind_blob(handle, index, $0.baseAddress, CInt($0.count), Self.transient) }
    }

    mutating func bind(_ value: ColumnValue) {
        switch value {
        case .null:
            index += 1
            sqlite3_bind_null(handle, index)
        case .integer(let number): bind(number)
        case .real(let number):
            index += 1
            sqlite3_bind_double(handle, index, number)
        case .text(let text): bind(text)
        }
    }

    /// Runs the statement with the values bound since the last run, then clears them.
    mutating func step() throws {
        let code = sqlite3_step(handle)
        index = 0
        sqlite3_reset(handle)
        guard code == SQLITE_DONE || code == SQLITE_ROW else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(connection)))
        }
    }
}
