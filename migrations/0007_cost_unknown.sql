-- Subscription mode: an agent run that finished without reporting its cost. The task's
-- spent_cost_usd then undercounts, so its cost limit is not enforced (wall time and turns
-- still are) and its cost is shown as unknown.

ALTER TABLE tasks ADD COLUMN cost_unknown boolean NOT NULL DEFAULT false;
