-- Budget defaults per repository (a task's own limits win; then these; then the worker's
-- global defaults). NULL: no default at this level.

ALTER TABLE repos ADD COLUMN max_cost_usd numeric(12, 4) CHECK (max_cost_usd > 0);
ALTER TABLE repos ADD COLUMN max_wall_seconds integer CHECK (max_wall_seconds > 0);
ALTER TABLE repos ADD COLUMN max_turns integer CHECK (max_turns > 0);
-- Budget warnings already sent for a task (one per limit), so a resume does not repeat them.
ALTER TABLE tasks ADD COLUMN budget_warned text[] NOT NULL DEFAULT '{}';
