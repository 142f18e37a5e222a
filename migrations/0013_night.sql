-- The night cycle (worker/night.py): while a night is on, a tick job keeps the worker fed
-- from the backlog until its end time, then the chat gets a summary. One night at a time.
-- `tick` is the sequence number of the one live tick job: a stale or duplicate tick (a job
-- run twice after a crash) finds another number and does nothing. A task is fed at most
-- once per night (night_tasks), so nothing runs twice and a failed task is retried once.

CREATE TABLE nights (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id      bigint,
    thread_id    bigint,
    started_by   text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    ends_at      timestamptz NOT NULL,
    tick         integer NOT NULL DEFAULT 0,
    stopped_at   timestamptz,
    stop_reason  text,
    CHECK (ends_at > started_at)
);
CREATE UNIQUE INDEX nights_one_on ON nights ((true)) WHERE stopped_at IS NULL;

CREATE TABLE night_tasks (
    night_id  bigint NOT NULL REFERENCES nights (id) ON DELETE CASCADE,
    task_id   bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    reason    text NOT NULL CHECK (reason IN ('backlog', 'retry')),
    fed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (night_id, task_id)
);
CREATE INDEX night_tasks_task_idx ON night_tasks (task_id);
