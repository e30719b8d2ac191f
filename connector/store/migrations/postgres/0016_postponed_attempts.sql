-- An attempt may be "postponed": a push cut short (Verba failing as a whole, the store failing mid-push, a rate
-- limit, its lease ending) that sent something, queued again without spending an attempt; recorded so that
-- `connector events show` shows what reached Verba.

ALTER TABLE attempts DROP CONSTRAINT attempts_outcome_check;
ALTER TABLE attempts ADD CONSTRAINT attempts_outcome_check
    CHECK (outcome IN ('done', 'retry', 'dead', 'postponed'));
