-- Which audit entries name each event, so that `connector events show`, replay's "already replayed" check and a push's
-- drift-repair reason read an event's audit by index instead of reading every entry's event_ids (313 ms an event
-- with 200,000 entries). Filled by a trigger, so every writer of the audit fills it; the entries written before are
-- added here.

CREATE TABLE audit_events (
    event_id INTEGER NOT NULL,
    audit_id INTEGER NOT NULL,
    PRIMARY KEY (event_id, audit_id)
) WITHOUT ROWID;

INSERT OR IGNORE INTO audit_events (event_id, audit_id) SELECT j.value, a.id FROM audit AS a, json_each(a.event_ids) AS j;

CREATE TRIGGER audit_events_add AFTER INSERT ON audit FOR EACH ROW
BEGIN INSERT OR IGNORE INTO audit_events (event_id, audit_id) SELECT value, NEW.id FROM json_each(NEW.event_ids); END;
