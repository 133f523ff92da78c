-- The durable-run store: one logical schema shared with the Postgres and memory backends.
-- Times are milliseconds since the Unix epoch by the database's clock; JSON is TEXT.
-- `IF NOT EXISTS` everywhere because two processes opening a new file at once may both run this
-- migration; the loser's bookkeeping insert then fails and it retries (see `SqliteStore::open`).

CREATE TABLE IF NOT EXISTS runs (
    run_id           TEXT    NOT NULL PRIMARY KEY,
    workflow         TEXT    NOT NULL,
    fingerprint      TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN
                         ('running', 'waiting', 'parked', 'completed', 'failed', 'cancelled')),
    owner            TEXT,
    epoch            INTEGER NOT NULL CHECK (epoch >= 0),
    recoveries       INTEGER NOT NULL DEFAULT 0 CHECK (recoveries >= 0),
    idempotency_key  TEXT    UNIQUE,
    result           TEXT,
    error            TEXT,
    last_journal_seq INTEGER NOT NULL DEFAULT 0 CHECK (last_journal_seq >= 0),
    last_event_seq   INTEGER NOT NULL DEFAULT 0 CHECK (last_event_seq >= 0),
    wake_at_ms       INTEGER,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL
) STRICT;

-- Claims look for unowned or orphaned runs of the served workflows, oldest first; only runs that
-- may be claimable are indexed, so finished runs piling up do not slow claims down.
CREATE INDEX IF NOT EXISTS runs_claim ON runs (workflow, fingerprint, created_at_ms)
    WHERE status IN ('running', 'waiting');
-- Listing runs is oldest first.
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at_ms);

CREATE TABLE IF NOT EXISTS journal (
    run_id TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    entry  TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS snapshots (
    run_id TEXT    NOT NULL PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    data   TEXT    NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS inbox (
    id       INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    run_id   TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    msg_id   TEXT    NOT NULL,
    event    TEXT    NOT NULL,
    consumed INTEGER NOT NULL DEFAULT 0 CHECK (consumed IN (0, 1)),
    UNIQUE (run_id, msg_id)
) STRICT;

CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    event  TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS workers (
    worker_id       TEXT    NOT NULL PRIMARY KEY,
    workflows       TEXT    NOT NULL,
    heartbeat_at_ms INTEGER NOT NULL
) STRICT;
