-- Worker heartbeats (worker/heartbeat.py): each worker process upserts its own row every
-- WORKER_HEARTBEAT_SECONDS and deletes it on a clean shutdown, so the status page and
-- /healthz can tell whether any worker is alive and how busy it is. A crashed worker's row
-- stops being refreshed; storage/workers.py prunes rows not seen for long.
--
-- `id` is "<hostname>:<pid>:<random>", made once per process. `running` is how many
-- run_task jobs the process runs now, out of its `concurrency`.
--
-- No index beyond the primary key: the table holds one row per live process, so a scan is
-- the cheapest read, and an index on seen_at would turn every heartbeat into a non-HOT update.

CREATE TABLE workers (
    id           text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 300),
    hostname     text NOT NULL,
    pid          integer NOT NULL CHECK (pid > 0),
    concurrency  integer NOT NULL CHECK (concurrency > 0),
    running      integer NOT NULL DEFAULT 0 CHECK (running >= 0),
    started_at   timestamptz NOT NULL DEFAULT now(),
    seen_at      timestamptz NOT NULL DEFAULT now()
);
