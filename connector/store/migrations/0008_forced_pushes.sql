-- Events that must be pushed even when the user's records equal those Verba last confirmed: an
-- operator's replay, a drift repair (connector/delivery/worker.py skips every other no-op push).

ALTER TABLE events ADD COLUMN forced integer NOT NULL DEFAULT 0;
