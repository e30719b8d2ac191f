-- SQLite's side of the queries that differ per dialect (postgres.sql has the same names).
-- Lists are passed as JSON text and read with json_each; BEGIN IMMEDIATE is the only lock.

-- insert_event --
-- A pending event of a user with a held event waits behind its first one (postgres.sql: why locked there; BEGIN
-- IMMEDIATE serializes every write here).
INSERT INTO events (idem_key, source, external_id, kind, state_json, cause, accepted_at,
    state, next_attempt_at, updated_at, forced, last_error, waits_behind)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
        (SELECT min(h.id) FROM events AS h WHERE h.source = %s AND h.external_id = %s AND h.state = 'held'))
ON CONFLICT (idem_key) DO NOTHING
RETURNING id

-- queued_behind_held --
-- These events (%(ids)s), queued by this transaction (a wake-up, a recheck), wait behind the first held event of
-- their user if pending.
UPDATE events SET waits_behind = (SELECT min(h.id) FROM events AS h
                                  WHERE h.source = events.source AND h.external_id = events.external_id
                                    AND h.state = 'held')
WHERE id IN (SELECT value FROM json_each(%(ids)s)) AND state = 'pending'

-- wait_behind_held --
-- The pending and in-flight events of the users of these events (%(ids)s) wait behind the first held event of their
-- user, or behind nothing when it has none.
UPDATE events SET waits_behind = (SELECT min(h.id) FROM events AS h
                                  WHERE h.source = events.source AND h.external_id = events.external_id
                                    AND h.state = 'held')
WHERE state IN ('pending', 'in_flight')
  AND (source, external_id) IN (SELECT source, external_id FROM events WHERE id IN (SELECT value FROM json_each(%(ids)s)))

-- expire_leases --
UPDATE events SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = %(at)s
WHERE state = 'in_flight' AND lease_until < %(now)s

-- anything_to_claim --
-- Whether a claim may find a user: a due pending event that waits behind no held event of its user (see pick_user),
-- or an expired lease. INDEXED BY (here and in pick_user): without statistics, SQLite prefers events_due, which holds
-- the events that wait behind held ones too, and reads them all.
SELECT ((SELECT next_attempt_at FROM events INDEXED BY events_claimable WHERE state = 'pending'
         AND waits_behind IS NULL AND next_attempt_at <= %(now)s ORDER BY next_attempt_at LIMIT 1) IS NOT NULL
    OR EXISTS (SELECT 1 FROM events WHERE state = 'in_flight' AND lease_until < %(now)s)) AS due

-- pick_user --
-- The oldest due event that is its user's oldest pending one, of a user with nothing in flight and no held event
-- (its pending events, older or newer, wait behind the held one until an operator approves or discards it: read
-- through events_claimable, the waiting ones are never read).
SELECT e.id, e.source, e.external_id FROM events AS e INDEXED BY events_claimable
WHERE e.state = 'pending' AND e.waits_behind IS NULL AND e.next_attempt_at <= %(now)s
  AND e.id = (SELECT min(p.id) FROM events AS p
              WHERE p.source = e.source AND p.external_id = e.external_id AND p.state = 'pending')
  AND NOT EXISTS (SELECT 1 FROM events AS f
                  WHERE f.source = e.source AND f.external_id = e.external_id AND f.state = 'in_flight')
  AND e.id NOT IN (SELECT value FROM json_each(%(skipped)s))
ORDER BY e.next_attempt_at, e.id LIMIT 1

-- add_attempt --
INSERT INTO attempts (source, external_id, event_ids, at, outcome, cause, error, sent)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)

-- attempts_of_event --
SELECT a.at, a.event_ids, a.outcome, a.cause, a.error, a.sent FROM attempts AS a
JOIN events AS e ON e.source = a.source AND e.external_id = a.external_id
WHERE e.id = %s AND EXISTS (SELECT 1 FROM json_each(a.event_ids) WHERE value = e.id)
ORDER BY a.id

-- requeue --
-- Dead, held or discarded events, and done events of an open conflict; the i-th (by id, from 0) is due at
-- now + i * spacing. A discarded one loses its discard reason (the audit keeps it).
UPDATE events SET state = 'pending', attempts = 0, next_attempt_at = %(now)s + chosen.i * %(spacing)s,
    updated_at = %(at)s, queued_at = %(now)s + chosen.i * %(spacing)s, approved = CASE WHEN %(approve)s THEN 1 ELSE approved END,
    forced = 1, discard_reason = NULL
FROM (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM events
    WHERE id IN (SELECT value FROM json_each(%(ids)s))
      AND (state IN ('dead', 'held', 'discarded') OR (state = 'done' AND id IN (SELECT event_id FROM extension_conflicts)))
) AS chosen
WHERE events.id = chosen.id AND events.state IN ('dead', 'held', 'discarded', 'done')

-- discard --
UPDATE events SET state = 'discarded', discard_reason = %s, updated_at = %s
WHERE id IN (SELECT value FROM json_each(%s)) AND state IN ('dead', 'held')

-- add_audit --
INSERT INTO audit (at, actor, action, event_ids, reason, detail) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id

-- list_audit --
SELECT id, at, actor, action, event_ids, reason, detail FROM audit WHERE at >= coalesce(%s, at)
ORDER BY id DESC LIMIT %s

-- audit_of_event --
SELECT id, at, actor, action, event_ids, reason, detail FROM audit
WHERE id IN (SELECT audit_id FROM audit_events WHERE event_id = %s) ORDER BY id

-- current_events --
-- current_event of each of these users of one source that has one.
SELECT id, idem_key, source, external_id, kind, state_json, cause, accepted_at,
    state, attempts, next_attempt_at, last_cause, last_error, discard_reason, updated_at
FROM events WHERE id IN (
    SELECT max(id) FROM events
    WHERE source = %s AND external_id IN (SELECT value FROM json_each(%s)) AND state NOT IN ('held', 'discarded')
    GROUP BY external_id)

-- verba_user_ids --
SELECT external_id, user_id FROM verba_users WHERE source = %s AND external_id IN (SELECT value FROM json_each(%s))

-- pushed_extensions_of --
-- pushed_extensions of each of these users of one source, in push order.
SELECT external_id, record FROM pushed_extensions WHERE source = %s AND external_id IN (SELECT value FROM json_each(%s))
ORDER BY external_id, position, extension

-- ldap_entries_by_id --
SELECT external_id, digest, active, groups, state FROM ldap_entries
WHERE directory = %s AND external_id IN (SELECT value FROM json_each(%s))

-- ldap_digests --
SELECT external_id, digest FROM ldap_entries WHERE directory = %s AND external_id IN (SELECT value FROM json_each(%s))

-- ldap_ids_in_groups --
SELECT e.external_id FROM ldap_entries e WHERE e.directory = %s
  AND EXISTS (SELECT 1 FROM json_each(e.groups) g WHERE g.value IN (SELECT value FROM json_each(%s)))

-- ldap_expiries --
SELECT external_id, json_extract(state, '$.expiresAt') AS expires FROM ldap_entries
WHERE directory = %s AND active AND json_extract(state, '$.expiresAt') IS NOT NULL

-- ldap_census_due --
-- The LDAP directories of these events (a list) that are deletes about to be discarded (dead or held): their next
-- run takes a census (watcher.py), which knows again the users of those deletes still in scope; a run under way
-- stores nothing (its version moved) and polls again.
UPDATE ldap_watermarks SET cursor = json_set(cursor, '$.census_due', json('true')), version = version + 1
WHERE directory IN (SELECT source FROM events WHERE id IN (SELECT value FROM json_each(%s)) AND kind = 'delete'
                    AND state IN ('dead', 'held'))

-- ldap_forget_digests --
-- The entries of the users of these events (a list) about to be discarded (dead or held) lose their digest: the
-- watcher stored them as those events had them, which Verba will not get, so their next read makes an event
-- whatever they hold then (a user disabled by mistake, restored with its old stamps, then disabled for good).
UPDATE ldap_entries SET digest = ''
WHERE (directory, external_id) IN (SELECT source, external_id FROM events
                                   WHERE id IN (SELECT value FROM json_each(%s)) AND state IN ('dead', 'held'))

-- lock_watermark --
-- BEGIN IMMEDIATE already holds the only write lock.
SELECT version FROM ldap_watermarks WHERE directory = %s

-- lock_source --
-- BEGIN IMMEDIATE already holds the only write lock: no row is written (it would cost the WAL a page a push).
SELECT %s AS source

-- scim_get_many --
SELECT r.client, r.resource_type, r.id, r.unique_key, r.display, r.body, r.version, r.created, r.last_modified
FROM scim_resources r WHERE r.client = %s AND r.id IN (SELECT value FROM json_each(%s)) ORDER BY r.pk

-- scim_groups_of --
SELECT v.value AS member, g.id, g.display FROM scim_values v JOIN scim_resources g ON g.pk = v.resource_pk
WHERE g.client = %s AND g.resource_type = 'Group' AND v.attr = 'members.value'
  AND v.folded IN (SELECT value FROM json_each(%s)) ORDER BY g.pk, v.idx

-- user_name --
-- The userName in an event's state, for filters.
json_extract(state_json, '$.userName')

-- expedite --
-- Pending events that backed off after failures of these causes are due at once.
UPDATE events SET next_attempt_at = %s, updated_at = %s
WHERE state = 'pending' AND next_attempt_at > %s AND last_cause IN (SELECT value FROM json_each(%s))

-- now --
-- The database's clock, Unix time in seconds: instances' liveness is judged by it alone.
SELECT (julianday('now') - 2440587.5) * 86400.0 AS now

-- table_names --
-- The store's tables, to tell an empty store from another program's database.
SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%%'

-- released --
-- The extensions a push released (a list parameter), for `wake`.
SELECT value FROM json_each(%(released)s)

-- owners --
SELECT extension, verba_user_id FROM extension_owners WHERE extension IN (SELECT value FROM json_each(%s))
