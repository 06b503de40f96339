#!/usr/bin/env python3
"""sqlite-ceiling: what SQLite alone can ingest with Herdwatch's event schema, as a peer for
scripts/bench-store.

    ceiling.py SOURCE.db TARGET.db [BATCH]

SOURCE is a store that herdwatch-bench-store filled. TARGET gets the same event tables (event_store
with every index, the command-line full-text index, event_block) and the same settings as the
store (WAL, synchronous FULL, a 256 MB page cache, checkpoints every 16,384 pages); then SOURCE's
rows are copied into it in the order they were stored, BATCH (default 5,000) per transaction, each
transaction fsynced. No parsing, no compression, no rollups, no hosts registry: only the b-tree
work of storing the rows, so no ingest into this schema on this machine can be faster. Prints one
JSON line: events, seconds, events_per_second.
"""
import json
import sqlite3
import sys
import time


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    source, target = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) == 4 else 5000
    db = sqlite3.connect(target, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    for pragma in ("synchronous = FULL", "cache_size = -262144", "temp_store = MEMORY", "wal_autocheckpoint = 16384"):
        db.execute("PRAGMA " + pragma)
    db.execute("ATTACH DATABASE ? AS source", (source,))
    schema = db.execute(
        "SELECT type, name, sql FROM source.sqlite_master WHERE sql IS NOT NULL AND "
        "(tbl_name IN ('event_store', 'event_block', 'command_search')) ORDER BY type = 'index', rowid").fetchall()
    for _, name, sql in schema:
        if name.startswith("command_search_"):
            continue  # the full-text index's own tables, made with it
        db.execute(sql)
    total = db.execute("SELECT count(*) FROM source.event_store").fetchone()[0]
    if total == 0:
        print("sqlite-ceiling: no events in " + source, file=sys.stderr)
        return 1
    last_rowid = db.execute("SELECT min(rowid) - 1 FROM source.event_store").fetchone()[0]
    max_rowid = db.execute("SELECT max(rowid) FROM source.event_store").fetchone()[0]
    last_block = 0
    copied = 0
    started = time.monotonic()
    while last_rowid < max_rowid:
        upper, top_block = db.execute(
            "SELECT max(rowid), max(block) FROM (SELECT rowid, block FROM source.event_store "
            "WHERE rowid > ? ORDER BY rowid LIMIT ?)", (last_rowid, batch)).fetchone()
        db.execute("BEGIN")
        db.execute("INSERT INTO main.event_block SELECT * FROM source.event_block WHERE id > ? AND id <= ?",
                   (last_block, top_block))
        before = db.execute("SELECT coalesce(max(rowid), 0) FROM main.event_store").fetchone()[0]
        cursor = db.execute("INSERT INTO main.event_store SELECT * FROM source.event_store WHERE rowid > ? AND rowid <= ?",
                            (last_rowid, upper))
        copied += cursor.rowcount
        db.execute("INSERT INTO main.command_search (rowid, command_line) SELECT rowid, command_line FROM main.event_store "
                   "WHERE rowid > ? AND command_line IS NOT NULL", (before,))
        db.execute("COMMIT")
        last_rowid, last_block = upper, max(last_block, top_block or 0)
    seconds = time.monotonic() - started
    print(json.dumps({"events": copied, "seconds": round(seconds, 3), "events_per_second": round(copied / seconds)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
