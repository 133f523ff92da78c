-- The durable-run store: one logical schema shared with the SQLite and memory backends.
-- Times are milliseconds since the Unix epoch by the database's clock
-- (`(extract(epoch from clock_timestamp()) * 1000)::bigint`); JSON is JSON .
-- Runs in the schema first on the connection's `search_path` (see `PostgresStore::connect_schema`).

CREATE TABLE runs (
    run_id           TEXT   NOT NULL PRIMARY KEY,
    -- Creation order: runs are listed and claimed oldest first, and milliseconds can tie.
    created_order    BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    workflow         TEXT   NOT NULL,
    fingerprint      TEXT   NOT NULL,
    status           TEXT   NOT NULL CHECK (status IN
                         ('running', 'waiting', 'parked', 'completed', 'failed', 'cancelled')),
    owner            TEXT,
    epoch            BIGINT NOT NULL CHECK (epoch >= 0),
    recoveries       BIGINT NOT NULL DEFAULT 0 CHECK (recoveries >= 0),
    idempotency_key  TEXT   UNIQUE,
    result           JSON ,
    error            TEXT,
    last_journal_seq BIGINT NOT NULL DEFAULT 0 CHECK (last_journal_seq >= 0),
    last_event_seq   BIGINT NOT NULL DEFAULT 0 CHECK (last_event_seq >= 0),
    wake_at_ms       BIGINT,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL
);

-- Claims look for running runs without a live owner and waiting runs whose wake-up time passed.
CREATE INDEX runs_claim ON runs (status, owner);
CREATE INDEX runs_wake ON runs (wake_at_ms) WHERE status = 'waiting';

CREATE TABLE journal (
    run_id TEXT   NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq    BIGINT NOT NULL,
    entry  JSON   NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE snapshots (
    run_id TEXT   NOT NULL PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,
    seq    BIGINT NOT NULL,
    data   JSON   NOT NULL
);

CREATE TABLE inbox (
    id       BIGSERIAL PRIMARY KEY,
    run_id   TEXT      NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    msg_id   TEXT      NOT NULL,
    event    JSON      NOT NULL,
    consumed BOOLEAN   NOT NULL DEFAULT FALSE,
    UNIQUE (run_id, msg_id)
);

-- A run's unread messages, oldest first.
CREATE INDEX inbox_unread ON inbox (run_id, id) WHERE NOT consumed;

CREATE TABLE run_events (
    run_id TEXT   NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq    BIGINT NOT NULL,
    event  JSON   NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE workers (
    worker_id       TEXT   NOT NULL PRIMARY KEY,
    workflows       JSON   NOT NULL,
    heartbeat_at_ms BIGINT NOT NULL
);
