-- Task memory: after each task, a summary of what happened with an embedding of the task's
-- text; before each task, the most similar memories of the same repository are recalled.
--
-- One memory per task: a task retried and finished again replaces its earlier memory (the
-- latest outcome is what counts, and two near-identical rows would crowd the top-k).
-- `task_key` and `title` are copied so a memory still reads well after its task is deleted.
-- `description` is kept so memories can be embedded again when the embedder changes;
-- `embedder` names the embedder that made `embedding`, and recall only compares vectors made
-- by the same one (two embedders' 256-dim spaces have nothing in common).

ALTER TABLE agent_memory
    ADD COLUMN task_key    text NOT NULL DEFAULT '',
    ADD COLUMN title       text NOT NULL DEFAULT '',
    ADD COLUMN description text NOT NULL DEFAULT '',
    ADD COLUMN attempts    integer NOT NULL DEFAULT 1 CHECK (attempts >= 0),
    ADD COLUMN cost_usd    numeric(12, 4) CHECK (cost_usd >= 0),  -- NULL: cost unknown
    ADD COLUMN embedder    text NOT NULL DEFAULT '';

-- Keep the newest memory of each task, then allow only one.
DELETE FROM agent_memory AS older
 USING agent_memory AS newer
 WHERE older.task_id = newer.task_id AND older.id < newer.id;
CREATE UNIQUE INDEX agent_memory_task_idx ON agent_memory (task_id) WHERE task_id IS NOT NULL;

-- Recall is always for one repository (and one embedder). Two plans, chosen per query by
-- storage/memory.py:
--   * a repository with few memories: read them all through this index and sort them exactly
--     (cheap, and exact: a global HNSW scan filtered by repo_id would find few or none of them);
--   * a repository with many: the HNSW index, with hnsw.iterative_scan set for the query so
--     the repo_id filter does not leave it short of k rows (should it ever be, the exact plan
--     runs instead).
-- The same index answers "how many memories has this repo" without reading the table.
DROP INDEX agent_memory_repo_idx;
CREATE INDEX agent_memory_repo_embedder_idx ON agent_memory (repo_id, embedder);
