-- The plan gate: which round of planning a task is in, who decided it, and since when it
-- waits for a person (reminders and expiry are PgQueuer jobs scheduled at that time).

ALTER TABLE tasks ADD COLUMN plan_round integer NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN plan_decided_by text;
ALTER TABLE tasks ADD COLUMN awaiting_since timestamptz;
