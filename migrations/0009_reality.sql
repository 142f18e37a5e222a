-- The reality signal (worker/reality.py) scores each task 0-100 before any agent run. A repo
-- may set a threshold: a task scoring below it is blocked, with the evidence, before it
-- costs anything. NULL: never block.

ALTER TABLE repos ADD COLUMN reality_threshold smallint
    CHECK (reality_threshold BETWEEN 0 AND 100);
