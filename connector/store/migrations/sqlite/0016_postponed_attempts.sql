-- An attempt may be "postponed": a push cut short (Verba failing as a whole, the store failing mid-push, a rate
-- limit, its lease ending) that sent something, queued again without spending an attempt; recorded so that
-- `connector events show` shows what reached Verba. SQLite cannot change a CHECK: the table is rebuilt, ids kept.

CREATE TABLE attempts_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('done', 'retry', 'dead', 'postponed')),
    cause TEXT,
    error TEXT,
    sent TEXT NOT NULL
);
INSERT INTO attempts_new (id, source, external_id, event_ids, at, outcome, cause, error, sent)
    SELECT id, source, external_id, event_ids, at, outcome, cause, error, sent FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_new RENAME TO attempts;
CREATE INDEX attempts_user ON attempts (source, external_id, id);
