-- Which audit entries name each event, so that `connector events show`, replay's "already replayed" check and a push's
-- drift-repair reason read an event's audit by index instead of reading every entry's event_ids. Filled by a
-- trigger, so every writer of the audit fills it; the entries written before are added here. The function keeps the
-- schema it was made in (a writer with another search_path, a data-only restore, still fills the right table), and
-- a row there already (a restore of both tables) is left as it is.

CREATE TABLE audit_events (
    event_id bigint NOT NULL,
    audit_id bigint NOT NULL,
    PRIMARY KEY (event_id, audit_id)
);

INSERT INTO audit_events (event_id, audit_id) SELECT DISTINCT e, a.id FROM audit AS a, unnest(a.event_ids) AS e;

CREATE FUNCTION audit_events_add() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN INSERT INTO audit_events (event_id, audit_id) SELECT DISTINCT e, NEW.id FROM unnest(NEW.event_ids) AS e ON CONFLICT DO NOTHING; RETURN NULL; END $$;

CREATE TRIGGER audit_events_add AFTER INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_events_add();
