-- A task's kind: `change` (an agent makes the change; every task so far) or `apply` (a
-- forwarded patch series is applied with `git am --3way`, then verified and delivered like
-- any change). An idea made into a task keeps its link (tasks.idea_id, ideas.task_id).

ALTER TABLE tasks ADD COLUMN kind text NOT NULL DEFAULT 'change'
    CHECK (kind IN ('change', 'apply'));
ALTER TABLE artifacts DROP CONSTRAINT artifacts_kind_check;
ALTER TABLE artifacts ADD CONSTRAINT artifacts_kind_check
    CHECK (kind IN ('patch', 'mbox', 'plan', 'log', 'source'));
