-- The store's queries that read the same on SQLite and PostgreSQL, one named block each.
-- Placeholders are psycopg's (%s, %(name)s); connector/store/queries.py turns them into
-- SQLite's (?, :name). Queries that differ per dialect are in sqlite.sql and postgres.sql,
-- under the same names in both. JSON columns are read back as text on both.

-- schema_version --
CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)

-- current_version --
SELECT coalesce(max(version), 0) AS version FROM schema_version

-- add_version --
INSERT INTO schema_version (version) VALUES (%s)

-- claim_user --
-- Run under the user's lock, so the in-flight check sees every earlier claim committed. The pending events of a user
-- with a held event are not claimed: they wait until an operator approves or discards it (a replayed older one too,
-- which would push a state older than the held change).
UPDATE events SET state = 'in_flight', attempts = attempts + 1, lease_owner = %(owner)s,
    lease_until = %(lease_until)s, updated_at = %(at)s
WHERE source = %(source)s AND external_id = %(external_id)s AND state = 'pending'
  AND NOT EXISTS (SELECT 1 FROM events AS f WHERE f.source = %(source)s AND f.external_id = %(external_id)s
                  AND f.state = 'in_flight')
  AND (SELECT min(h.id) FROM events AS h WHERE h.source = %(source)s AND h.external_id = %(external_id)s
       AND h.state = 'held') IS NULL
RETURNING id, idem_key, source, external_id, kind, state_json, cause, accepted_at,
    state, attempts, next_attempt_at, last_cause, last_error, discard_reason, updated_at, forced

-- settle --
-- Ends the lease of a claim's events (all the in-flight events of the user under this lease);
-- a NULL leaves next_attempt_at, last_cause or last_error as they were.
UPDATE events SET state = %(state)s, attempts = attempts - %(unclaim)s,
    next_attempt_at = coalesce(%(next_attempt_at)s, next_attempt_at),
    last_cause = coalesce(%(cause)s, last_cause), last_error = coalesce(%(error)s, last_error),
    lease_owner = NULL, lease_until = NULL, updated_at = %(at)s
WHERE source = %(source)s AND external_id = %(external_id)s AND state = 'in_flight'
  AND lease_owner = %(owner)s AND lease_until = %(lease_until)s

-- supersede_dead --
-- The user's dead letters up to the event whose state a push delivered: nothing is left to deliver for them.
UPDATE events SET state = 'discarded', discard_reason = %(reason)s, updated_at = %(at)s
WHERE source = %(source)s AND external_id = %(external_id)s AND state = 'dead' AND id <= %(upto)s
RETURNING id

-- renew_lease --
UPDATE events SET lease_until = %(new)s
WHERE source = %(source)s AND external_id = %(external_id)s AND state = 'in_flight'
  AND lease_owner = %(owner)s AND lease_until = %(lease_until)s

-- renew_locks --
UPDATE extension_locks SET lock_until = %s WHERE owner = %s

-- release_locks --
DELETE FROM extension_locks

-- release_leases --
UPDATE events SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = %s
WHERE state = 'in_flight'

-- forget_pushed --
DELETE FROM pushed_extensions WHERE source = %s AND external_id = %s

-- add_pushed --
INSERT INTO pushed_extensions (source, external_id, extension, position, record, pushed_at)
VALUES (%s, %s, %s, %s, %s, %s)

-- note_pushing --
-- A noted extension keeps its place among the pushed ones; a new one goes last.
INSERT INTO pushed_extensions (source, external_id, extension, position, record, pushed_at)
VALUES (%(source)s, %(external_id)s, %(extension)s,
        (SELECT coalesce(max(position) + 1, 0) FROM pushed_extensions
         WHERE source = %(source)s AND external_id = %(external_id)s),
        %(record)s, %(at)s)
ON CONFLICT (source, external_id, extension) DO UPDATE SET record = excluded.record, pushed_at = excluded.pushed_at

-- forget_pushing --
-- A first push noted by note_pushing that no write went out for: Verba never received it.
DELETE FROM pushed_extensions WHERE source = %s AND external_id = %s AND extension = %s

-- pushed_extensions --
SELECT record FROM pushed_extensions WHERE source = %s AND external_id = %s ORDER BY position, extension

-- set_verba_user --
INSERT INTO verba_users (source, external_id, user_id) VALUES (%s, %s, %s)
ON CONFLICT (source, external_id) DO UPDATE SET user_id = excluded.user_id

-- verba_user_id --
SELECT user_id FROM verba_users WHERE source = %s AND external_id = %s

-- get_event --
-- waits_behind (here and in list_events): for a pending event, the first held event of its user, which it waits
-- behind (see pick_user); else NULL (the column is kept for pending and in-flight events only).
SELECT id, idem_key, source, external_id, kind, state_json, cause, accepted_at,
    state, attempts, next_attempt_at, last_cause, last_error, discard_reason, updated_at,
    CASE WHEN state = 'pending' THEN waits_behind END AS waits_behind
FROM events WHERE id = %s

-- current_event --
SELECT id, idem_key, source, external_id, kind, state_json, cause, accepted_at,
    state, attempts, next_attempt_at, last_cause, last_error, discard_reason, updated_at
FROM events WHERE source = %s AND external_id = %s AND state NOT IN ('held', 'discarded')
ORDER BY id DESC LIMIT 1

-- claim_current --
-- current_event as a claim reads it: the user's newest event that is not held or discarded, while the user has no
-- held event (its events wait for an operator's approval or discard of that one, so no state of theirs is pushed).
SELECT e.id, e.idem_key, e.source, e.external_id, e.kind, e.state_json, e.cause, e.accepted_at,
    e.state, e.attempts, e.next_attempt_at, e.last_cause, e.last_error, e.discard_reason, e.updated_at
FROM events AS e WHERE e.source = %s AND e.external_id = %s AND e.state NOT IN ('held', 'discarded')
  AND (SELECT min(h.id) FROM events AS h WHERE h.source = e.source AND h.external_id = e.external_id
       AND h.state = 'held') IS NULL
ORDER BY e.id DESC LIMIT 1

-- newest_event --
SELECT id, idem_key, source, external_id, kind, state_json, cause, accepted_at,
    state, attempts, next_attempt_at, last_cause, last_error, discard_reason, updated_at
FROM events WHERE source = %s AND external_id = %s ORDER BY id DESC LIMIT 1

-- count_by_state --
-- {filters} (here and below): the caller's conditions on events, " AND ..." or nothing (EventLog._filtered).
SELECT state, count(*) AS n FROM events WHERE 1 = 1 {filters} GROUP BY state

-- list_events --
SELECT id, idem_key, source, external_id, kind, state_json, cause, accepted_at,
    state, attempts, next_attempt_at, last_cause, last_error, discard_reason, updated_at,
    CASE WHEN state = 'pending' THEN waits_behind END AS waits_behind
FROM events WHERE 1 = 1 {filters} ORDER BY id DESC LIMIT %(limit)s

-- dead_letter_summary --
-- One row per cause however many users it has: the count, and the newest dead letter's message as a sample.
SELECT g.last_cause AS cause, coalesce(e.last_error, '') AS sample, g.n AS size FROM (
    SELECT last_cause, count(*) AS n, max(id) AS newest FROM events
    WHERE state = 'dead' {filters} GROUP BY last_cause
) g JOIN events e ON e.id = g.newest
ORDER BY g.n DESC, g.last_cause

-- retrying_summary --
-- The undelivered events whose last attempt failed (retried with backoff), grouped as dead_letter_summary's.
SELECT g.last_cause AS cause, coalesce(e.last_error, '') AS sample, g.n AS size FROM (
    SELECT last_cause, count(*) AS n, max(id) AS newest FROM events
    WHERE state IN ('pending', 'in_flight') AND attempts > 0 AND last_cause IS NOT NULL {filters} GROUP BY last_cause
) g JOIN events e ON e.id = g.newest
ORDER BY g.n DESC, g.last_cause

-- held_summary --
-- By cause and source, with the newest held event's message; the LDAP mass-change guard's leave no cause.
SELECT g.cause, g.source, g.n AS size, e.last_error AS sample FROM (
    SELECT coalesce(last_cause, 'ldap_mass_change') AS cause, source, count(*) AS n, max(id) AS newest
    FROM events WHERE state = 'held' {filters} GROUP BY coalesce(last_cause, 'ldap_mass_change'), source
) g JOIN events e ON e.id = g.newest
ORDER BY g.n DESC, g.cause, g.source

-- waiting_behind_held --
-- The pending events that wait behind a held event of their user (see pick_user), and how many users they are.
SELECT count(*) AS users, coalesce(sum(w.n), 0) AS events FROM (
    SELECT count(*) AS n FROM events WHERE state = 'pending' AND waits_behind IS NOT NULL GROUP BY source, external_id
) AS w

-- oldest_pending_at --
-- Since each was accepted, or queued again by a replay or an approval. A pending event that waits behind a held event
-- of its user waits for an operator, as the held one does: not counted (waiting_behind_held counts them). Each state is
-- read alone (on PostgreSQL through its partial index, events_claimable and events_leases: `state IN (...)` scanned
-- the whole table).
SELECT min(o.at) AS oldest FROM (
    SELECT min(coalesce(queued_at, accepted_at)) AS at FROM events WHERE state = 'pending' AND waits_behind IS NULL
    UNION ALL
    SELECT min(coalesce(queued_at, accepted_at)) FROM events WHERE state = 'in_flight'
) AS o

-- count_by_source_and_kind --
SELECT source, kind, count(*) AS n FROM events GROUP BY source, kind ORDER BY source, kind

-- ping --
INSERT INTO heartbeat (id, at) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET at = excluded.at

-- ldap_watermark --
SELECT directory, cursor, version, known, last_run_at, last_success_at, last_error, counts
FROM ldap_watermarks WHERE directory = %s

-- ldap_watermarks --
SELECT directory, cursor, version, known, last_run_at, last_success_at, last_error, counts
FROM ldap_watermarks ORDER BY directory

-- ldap_entries --
SELECT external_id, digest, active, groups, state FROM ldap_entries WHERE directory = %s

-- ldap_ids_after --
-- The scope check's next batch: known ids after one, in the primary key's order.
SELECT external_id FROM ldap_entries WHERE directory = %s AND external_id > %s ORDER BY external_id LIMIT %s

-- ldap_forgotten --
-- The directory's users the store still records and knows no entry of (LdapMarks.ldap_forgotten): their newest event
-- neither held nor discarded is no delete, none is held, and ldap_entries has no row of them. The events of the
-- directory are read through events_user, the unknown ones' only to find their newest.
SELECT e.external_id, e.state_json FROM events AS e JOIN (
    SELECT c.external_id, max(c.id) AS id FROM events AS c
    WHERE c.source = %s AND c.state NOT IN ('held', 'discarded')
      AND NOT EXISTS (SELECT 1 FROM ldap_entries AS l WHERE l.directory = c.source AND l.external_id = c.external_id)
    GROUP BY c.external_id
) AS newest ON e.id = newest.id
WHERE e.kind <> 'delete'
  AND NOT EXISTS (SELECT 1 FROM events AS h WHERE h.source = e.source AND h.external_id = e.external_id
                  AND h.state = 'held')
ORDER BY e.external_id

-- ensure_watermark --
INSERT INTO ldap_watermarks (directory, cursor, version) VALUES (%s, '{}', 0) ON CONFLICT (directory) DO NOTHING

-- put_ldap_entry --
INSERT INTO ldap_entries (directory, external_id, digest, active, groups, state) VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (directory, external_id) DO UPDATE SET digest = excluded.digest, active = excluded.active,
    groups = excluded.groups, state = excluded.state

-- remove_ldap_entry --
DELETE FROM ldap_entries WHERE directory = %s AND external_id = %s

-- advance_watermark --
UPDATE ldap_watermarks SET cursor = %(cursor)s, version = version + 1,
    known = CASE WHEN %(recount)s THEN (SELECT count(*) FROM ldap_entries WHERE directory = %(directory)s) ELSE known END,
    last_run_at = %(at)s, last_success_at = %(at)s, last_error = NULL, counts = %(counts)s
WHERE directory = %(directory)s

-- note_poll_failure --
INSERT INTO ldap_watermarks (directory, cursor, version, last_run_at, last_error) VALUES (%s, '{}', 0, %s, %s)
ON CONFLICT (directory) DO UPDATE SET last_run_at = excluded.last_run_at, last_error = excluded.last_error

-- scim_get --
-- By (client, id), its own unique index; the caller compares the type (here and in scim_get_many): with the type in
-- the WHERE, PostgreSQL without statistics (a store just filled) read every resource of the type through the
-- (client, resource_type, unique_key) index for each one.
SELECT r.client, r.resource_type, r.id, r.unique_key, r.display, r.body, r.version, r.created, r.last_modified
FROM scim_resources r WHERE r.client = %s AND r.id = %s

-- scim_names --
SELECT r.id, r.display FROM scim_resources r WHERE r.client = %s AND r.resource_type = %s ORDER BY r.pk

-- scim_touch --
-- By (client, id), as scim_get (why there).
UPDATE scim_resources SET version = version + 1, last_modified = %s WHERE client = %s AND id = %s

-- scim_clients --
SELECT DISTINCT client FROM scim_resources ORDER BY client

-- scim_comparisons --
SELECT comparisons FROM scim_comparisons

-- scim_set_comparisons --
INSERT INTO scim_comparisons (one, comparisons) VALUES (1, %s)
ON CONFLICT (one) DO UPDATE SET comparisons = excluded.comparisons

-- scim_keyless --
-- The resources kept without a key (Users sharing a login with another: connector/sources/scim/upgrade.py), few,
-- found through the unique index on (client, resource_type, unique_key).
SELECT r.client, r.resource_type, r.id, r.unique_key, r.display, r.body, r.version, r.created, r.last_modified
FROM scim_resources r WHERE r.client = %s AND r.resource_type = %s AND r.unique_key IS NULL ORDER BY r.pk

-- scim_find_unique --
SELECT id FROM scim_resources WHERE client = %s AND resource_type = %s AND unique_key = %s

-- scim_put --
INSERT INTO scim_resources (client, resource_type, id, unique_key, display, body, version, created, last_modified)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (client, id) DO UPDATE SET unique_key = excluded.unique_key, display = excluded.display,
    body = excluded.body, version = excluded.version, last_modified = excluded.last_modified
RETURNING pk

-- scim_values_of --
SELECT attr, idx, value FROM scim_values WHERE resource_pk = %s

-- scim_remove_value --
DELETE FROM scim_values WHERE resource_pk = %s AND attr = %s AND idx = %s AND value = %s

-- scim_add_value --
INSERT INTO scim_values (resource_pk, attr, idx, value, folded) VALUES (%s, %s, %s, %s, %s)

-- scim_delete --
DELETE FROM scim_resources WHERE client = %s AND resource_type = %s AND id = %s

-- lock_extension --
INSERT INTO extension_locks (extension, owner, lock_until) VALUES (%s, %s, %s)
ON CONFLICT (extension) DO UPDATE SET owner = excluded.owner, lock_until = excluded.lock_until
WHERE extension_locks.lock_until < %s OR extension_locks.owner = excluded.owner
RETURNING extension

-- claims_of_user --
SELECT extension, claimed_at FROM extension_claims WHERE source = %s AND external_id = %s

-- unclaim --
DELETE FROM extension_claims WHERE source = %s AND external_id = %s AND extension = %s

-- claim_extension --
-- A claim keeps the time it was first accepted; the user's Verba id and login name are refreshed.
INSERT INTO extension_claims (extension, source, external_id, verba_user_id, login_name, claimed_at)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (extension, source, external_id)
DO UPDATE SET verba_user_id = excluded.verba_user_id, login_name = excluded.login_name

-- rivals --
SELECT source, external_id, verba_user_id, login_name, claimed_at FROM extension_claims
WHERE extension = %s AND NOT (source = %s AND external_id = %s)
ORDER BY claimed_at, source, external_id

-- claimants --
SELECT source, external_id, verba_user_id, login_name, claimed_at FROM extension_claims
WHERE extension = %s ORDER BY claimed_at, source, external_id

-- set_owner --
-- The pushing user (source, external_id) is kept with the owner, except that a push of one of the owner's own
-- source users that wrote or saw it linked to them stays recorded while the owner is unchanged: another user's
-- push that finds it still linked to them (waiting behind an earlier claimant) must not hide that they let it go.
INSERT INTO extension_owners (extension, verba_user_id, source, external_id) VALUES (%s, %s, %s, %s)
ON CONFLICT (extension) DO UPDATE SET verba_user_id = excluded.verba_user_id,
    source = CASE WHEN extension_owners.verba_user_id = excluded.verba_user_id AND EXISTS (
        SELECT 1 FROM verba_users AS v WHERE v.source = extension_owners.source
        AND v.external_id = extension_owners.external_id AND v.user_id = extension_owners.verba_user_id)
        THEN extension_owners.source ELSE excluded.source END,
    external_id = CASE WHEN extension_owners.verba_user_id = excluded.verba_user_id AND EXISTS (
        SELECT 1 FROM verba_users AS v WHERE v.source = extension_owners.source
        AND v.external_id = extension_owners.external_id AND v.user_id = extension_owners.verba_user_id)
        THEN extension_owners.external_id ELSE excluded.external_id END

-- forget_owner --
DELETE FROM extension_owners WHERE extension = %s

-- conflicts_since --
SELECT extension, since FROM extension_conflicts WHERE source = %s AND external_id = %s

-- clear_conflicts --
DELETE FROM extension_conflicts WHERE source = %s AND external_id = %s RETURNING extension, since, event_id

-- put_conflict --
INSERT INTO extension_conflicts (extension, source, external_id, event_id, verba_user_id, login_name,
    owner_user_id, owner_login, owner_claimant, message, since)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (extension, source, external_id) DO UPDATE SET event_id = excluded.event_id,
    verba_user_id = excluded.verba_user_id, login_name = excluded.login_name, owner_user_id = excluded.owner_user_id,
    owner_login = excluded.owner_login, owner_claimant = excluded.owner_claimant, message = excluded.message

-- unlock_extensions --
DELETE FROM extension_locks WHERE owner = %s

-- wake --
-- Users waiting in a conflict on one of the extensions ({released}: the dialect's `released`), but the pusher, get a
-- fresh pending event of their current state (its cause: %(cause)s), so that the conflict is tried again; the new
-- events and their users (a user with a held event before that state: its new event waits behind it,
-- `queued_behind_held`).
INSERT INTO events (source, external_id, kind, state_json, cause, accepted_at, state, next_attempt_at, updated_at,
    forced)
SELECT source, external_id, kind, state_json, %(cause)s, %(now)s, 'pending', %(now)s, %(now)s, 0
FROM events AS n WHERE id IN (
    SELECT max(e.id) FROM events AS e JOIN extension_conflicts AS c
        ON c.source = e.source AND c.external_id = e.external_id
    WHERE c.extension IN ({released}) AND e.state NOT IN ('held', 'discarded')
      AND NOT (e.source = %(source)s AND e.external_id = %(external_id)s)
    GROUP BY e.source, e.external_id)
  -- a user with a held change after it waits for an operator: approving that change pushes it, and tries again
  AND NOT EXISTS (SELECT 1 FROM events AS h WHERE h.source = n.source AND h.external_id = n.external_id
                  AND h.state = 'held' AND h.id > n.id)
ORDER BY source, external_id
RETURNING id, source, external_id

-- recheck --
-- A fresh pending event of the user's current state (its newest event neither held nor discarded), pushed even if
-- nothing changed (forced), its cause %(cause)s: another source of the same Verba user claimed an extension first
-- and wrote other settings to it, so this user's push finds out whether it now waits in a conflict; or a drift
-- repair. None while a held change of the user comes after that event: an operator decides it first (one before it:
-- the new event waits behind it, `queued_behind_held`). The new event and its user, if queued.
INSERT INTO events (source, external_id, kind, state_json, cause, accepted_at, state, next_attempt_at, updated_at,
    forced)
SELECT source, external_id, kind, state_json, %(cause)s, %(now)s, 'pending', %(now)s, %(now)s, 1
FROM events AS e WHERE id = (SELECT max(id) FROM events WHERE source = %(source)s AND external_id = %(external_id)s
                             AND state NOT IN ('held', 'discarded'))
    AND NOT EXISTS (SELECT 1 FROM events AS h WHERE h.source = e.source AND h.external_id = e.external_id
                    AND h.state = 'held' AND h.id > e.id)
RETURNING id, source, external_id

-- source_users_of --
SELECT source, external_id FROM verba_users WHERE user_id = %s ORDER BY source, external_id

-- let_go_by_holder --
-- Whether the connector last wrote (or saw) the extension linked to this Verba user in a push of one of that Verba
-- user's own source users (a leaver's stop, a number change's), not in another user's push.
SELECT o.source, o.external_id FROM extension_owners AS o
JOIN verba_users AS v ON v.source = o.source AND v.external_id = o.external_id AND v.user_id = o.verba_user_id
WHERE o.extension = %s AND o.verba_user_id = %s

-- open_conflicts --
SELECT c.extension, c.source, c.external_id, c.event_id, c.verba_user_id, c.login_name, c.owner_user_id,
    c.owner_login, c.owner_claimant, c.message, c.since, coalesce(k.claimed_at, c.since) AS claimed_at
FROM extension_conflicts AS c LEFT JOIN extension_claims AS k
    ON k.extension = c.extension AND k.source = c.source AND k.external_id = c.external_id
ORDER BY c.since, c.extension, c.source, c.external_id LIMIT %s

-- conflicts_of --
SELECT c.extension, c.source, c.external_id, c.event_id, c.verba_user_id, c.login_name, c.owner_user_id,
    c.owner_login, c.owner_claimant, c.message, c.since, coalesce(k.claimed_at, c.since) AS claimed_at
FROM extension_conflicts AS c LEFT JOIN extension_claims AS k
    ON k.extension = c.extension AND k.source = c.source AND k.external_id = c.external_id
WHERE c.source = %s AND c.external_id = %s
ORDER BY c.since, c.extension

-- clashes --
-- Extensions that users of two or more Verba users claim at once.
SELECT extension FROM extension_claims GROUP BY extension HAVING count(DISTINCT verba_user_id) > 1
ORDER BY extension LIMIT %s

-- ownership_counts --
SELECT (SELECT count(*) FROM extension_conflicts) AS conflicts,
    (SELECT count(*) FROM (SELECT extension FROM extension_claims GROUP BY extension
                           HAVING count(DISTINCT verba_user_id) > 1) AS c) AS clashes

-- forget_stops --
DELETE FROM stop_recordings WHERE source = %s AND at < %s

-- approved --
SELECT 1 AS approved FROM events WHERE source = %s AND external_id = %s AND state = 'in_flight'
AND lease_owner = %s AND approved = 1

-- stopped --
SELECT count(*) AS n FROM stop_recordings WHERE source = %s AND at >= %s AND external_id <> %s

-- forget_stop --
-- A user recorded again (re-enabled) no longer counts as one whose recording stopped.
DELETE FROM stop_recordings WHERE source = %s AND external_id = %s

-- recorded --
-- The source's users recorded at the window's start (about): those who claim an extension now and those whose
-- recording stopped within it, each once (a user whose number moved is both).
SELECT count(*) AS n FROM (
    SELECT external_id FROM extension_claims WHERE source = %(source)s
    UNION SELECT external_id FROM stop_recordings WHERE source = %(source)s AND at >= %(since)s
) AS users

-- add_stop --
INSERT INTO stop_recordings (source, external_id, at) VALUES (%s, %s, %s)
ON CONFLICT (source, external_id) DO UPDATE
SET at = CASE WHEN excluded.at > stop_recordings.at THEN excluded.at ELSE stop_recordings.at END

-- note_breaker --
INSERT INTO breakers (instance, opened_at, probed_at, error, updated_at) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (instance) DO UPDATE SET opened_at = excluded.opened_at, probed_at = excluded.probed_at,
    error = excluded.error, updated_at = excluded.updated_at

-- close_breaker --
DELETE FROM breakers WHERE instance = %s

-- open_breakers --
SELECT instance, opened_at, probed_at, error, updated_at FROM breakers ORDER BY opened_at

-- forget_breakers --
DELETE FROM breakers

-- note_target_probe --
-- A probe that started before the one recorded (a slow health probe, overtaken by the breaker's) changes nothing.
INSERT INTO target_probes (instance, url, probed_at, seconds, cause, error)
VALUES (%(instance)s, %(url)s, %(probed_at)s, %(seconds)s, %(cause)s, %(error)s)
ON CONFLICT (instance) DO UPDATE SET url = excluded.url, probed_at = excluded.probed_at, seconds = excluded.seconds,
    cause = excluded.cause, error = excluded.error
WHERE excluded.probed_at >= target_probes.probed_at

-- target_probes --
-- Newest first.
SELECT instance, url, probed_at, seconds, cause, error FROM target_probes ORDER BY probed_at DESC, instance

-- note_recorder --
INSERT INTO recorders (location, eid, status, message, applied_at, instance)
VALUES (%(location)s, %(eid)s, %(status)s, %(message)s, %(applied_at)s, %(instance)s)
ON CONFLICT (location) DO UPDATE SET eid = excluded.eid, status = excluded.status, message = excluded.message,
    applied_at = excluded.applied_at, instance = excluded.instance

-- recorders --
SELECT location, eid, status, message, applied_at, instance FROM recorders ORDER BY location

-- instance --
SELECT name, run, host, pid, started_at, heartbeat_at FROM instances WHERE name = %s

-- instances --
SELECT name, run, host, pid, started_at, heartbeat_at, mapping_digest FROM instances ORDER BY name

-- heard_instances --
-- The instances heard from since %s, read before `db upgrade` on a schema from migration 7 on: its columns only.
SELECT name, run, host, pid, started_at, heartbeat_at FROM instances WHERE heartbeat_at >= %s ORDER BY name

-- put_instance --
INSERT INTO instances (name, run, host, pid, started_at, heartbeat_at) VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (name) DO UPDATE SET run = excluded.run, host = excluded.host, pid = excluded.pid,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at

-- add_instance --
-- Back after being judged dead: only if no other start of the same name took its place.
INSERT INTO instances (name, run, host, pid, started_at, heartbeat_at) VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (name) DO NOTHING

-- beat --
UPDATE instances SET heartbeat_at = %s WHERE run = %s

-- silent_instances --
SELECT name, run, host, pid, started_at, heartbeat_at FROM instances WHERE heartbeat_at < %s ORDER BY name

-- release_run --
-- The claims of one start of an instance go back to the queue (in order: their due times stay).
UPDATE events SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = %s
WHERE state = 'in_flight' AND lease_owner LIKE %s || '/%%'

-- unlock_run --
DELETE FROM extension_locks WHERE owner LIKE %s || '/%%'

-- forget_instance --
DELETE FROM instances WHERE run = %s

-- note_dead_instance --
-- A later start of the same name counted dead again replaces the record of the earlier one.
INSERT INTO dead_instances (name, run, host, pid, started_at, heartbeat_at, reaped_at, reaped_by, released)
VALUES (%(name)s, %(run)s, %(host)s, %(pid)s, %(started_at)s, %(heartbeat_at)s, %(reaped_at)s, %(reaped_by)s,
        %(released)s)
ON CONFLICT (name) DO UPDATE SET run = excluded.run, host = excluded.host, pid = excluded.pid,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, reaped_at = excluded.reaped_at,
    reaped_by = excluded.reaped_by, released = excluded.released

-- dead_instances --
SELECT name, run, host, pid, started_at, heartbeat_at, reaped_at, reaped_by, released FROM dead_instances
ORDER BY name

-- forget_dead_instance --
DELETE FROM dead_instances WHERE name = %s

-- forget_dead_run --
DELETE FROM dead_instances WHERE run = %s

-- forget_leadership --
DELETE FROM leaders WHERE instance = %s

-- lead --
-- Take the task if nobody leads it or its leader is gone from `instances`; keep it if we lead.
INSERT INTO leaders (task, instance, since) VALUES (%s, %s, %s)
ON CONFLICT (task) DO UPDATE SET instance = excluded.instance,
    since = CASE WHEN leaders.instance = excluded.instance THEN leaders.since ELSE excluded.since END
WHERE leaders.instance = excluded.instance
   OR NOT EXISTS (SELECT 1 FROM instances WHERE instances.name = leaders.instance)
RETURNING instance

-- leaders --
SELECT l.task, l.instance FROM leaders AS l JOIN instances AS i ON i.name = l.instance ORDER BY l.task

-- forget_instances --
DELETE FROM instances

-- forget_leaders --
DELETE FROM leaders

-- user_keys --
SELECT DISTINCT source, external_id FROM events ORDER BY source, external_id

-- add_drift_run --
INSERT INTO drift_runs (started_at, finished_at, users, extensions, counts, unchecked, repaired, trigger)
VALUES (%(started_at)s, %(finished_at)s, %(users)s, %(extensions)s, %(counts)s, %(unchecked)s, %(repaired)s,
        %(trigger)s)
ON CONFLICT (started_at) DO NOTHING

-- last_drift_run --
SELECT started_at, finished_at, users, extensions, counts, unchecked, repaired, trigger FROM drift_runs
ORDER BY started_at DESC LIMIT 1

-- forget_drift_failures --
DELETE FROM drift_failures WHERE failed_at < %(failed_at)s

-- add_drift_failure --
INSERT INTO drift_failures (failed_at, started_at, error) VALUES (%(failed_at)s, %(started_at)s, %(error)s)
ON CONFLICT (failed_at) DO NOTHING

-- last_drift_failure --
-- The newest failed scheduled check, unless a check was recorded after it (checks work again).
SELECT started_at, failed_at, error FROM drift_failures
WHERE failed_at > COALESCE((SELECT finished_at FROM drift_runs ORDER BY started_at DESC LIMIT 1), 0)
ORDER BY failed_at DESC LIMIT 1

-- lease_holds --
-- Whether the user's claim under this lease (its owner, ending at least when the push read it: a renewal may have
-- moved it on since) still holds.
SELECT 1 AS holds FROM events WHERE source = %s AND external_id = %s AND state = 'in_flight'
  AND lease_owner = %s AND lease_until >= %s LIMIT 1

-- claim_held --
-- Whether this lease owner (one worker: one claim at a time) still holds the user's claim, however renewed.
SELECT 1 AS holds FROM events WHERE source = %s AND external_id = %s AND state = 'in_flight'
  AND lease_owner = %s LIMIT 1

-- registered_instance --
-- `instance`, with the pid namespace its pid belongs to (NULL: unknown), for a second start of the name.
SELECT name, run, host, pid, started_at, heartbeat_at, pid_namespace FROM instances WHERE name = %s

-- note_start --
-- What only a start knows of itself: its pid's namespace and the digest of the mapping it loaded.
UPDATE instances SET pid_namespace = %s, mapping_digest = %s WHERE run = %s
