-- DevServer's own tables (DESIGN §3). Statuses and kinds are CHECKed here and mirrored by
-- StrEnums in storage/; status changes go only through guarded UPDATEs in storage/tasks.py.

CREATE TABLE repos (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                  text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    key_prefix            text NOT NULL UNIQUE CHECK (key_prefix ~ '^[A-Z][A-Z0-9]{0,9}$'),
    task_seq              integer NOT NULL DEFAULT 0,
    source                text NOT NULL,
    forge_kind            text NOT NULL DEFAULT 'local'
                          CHECK (forge_kind IN ('gitea', 'forgejo', 'github', 'local')),
    forge_base_url        text,
    forge_owner           text,
    forge_name            text,
    default_branch        text NOT NULL,
    pre_command           text NOT NULL DEFAULT '',
    build_command         text NOT NULL DEFAULT '',
    test_command          text NOT NULL DEFAULT '',
    lint_command          text NOT NULL DEFAULT '',
    verify_timeout_seconds integer NOT NULL DEFAULT 600 CHECK (verify_timeout_seconds > 0),
    agent_backend         text NOT NULL DEFAULT 'claude',
    agent_command         text NOT NULL DEFAULT '',
    agent_model           text,
    allowed_tools         text[] NOT NULL DEFAULT '{}',
    max_attempts          integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 20),
    max_parallel_tasks    integer NOT NULL DEFAULT 2 CHECK (max_parallel_tasks > 0),
    git_author_name       text NOT NULL DEFAULT 'DevServer Agent',
    git_author_email      text NOT NULL DEFAULT 'agent@devserver.invalid',
    active                boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ideas (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parent_id   bigint REFERENCES ideas (id) ON DELETE CASCADE,
    is_folder   boolean NOT NULL DEFAULT false,
    title       text NOT NULL,
    body        text NOT NULL DEFAULT '',
    task_id     bigint,
    created_by  bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ideas_parent_idx ON ideas (parent_id);

CREATE TABLE tasks (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key                  text NOT NULL UNIQUE,
    repo_id              bigint NOT NULL REFERENCES repos (id),
    title                text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    description          text NOT NULL DEFAULT '',
    acceptance           text NOT NULL DEFAULT '',
    priority             smallint NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 4),
    mode                 text NOT NULL DEFAULT 'autonomous'
                         CHECK (mode IN ('autonomous', 'interactive')),
    git_flow             text NOT NULL DEFAULT 'patch' CHECK (git_flow IN ('pr', 'direct', 'patch')),
    skip_verify          boolean NOT NULL DEFAULT false,
    agent_backend        text,
    agent_model          text,
    max_turns            integer CHECK (max_turns > 0),
    max_cost_usd         numeric(12, 4) CHECK (max_cost_usd > 0),
    max_wall_seconds     integer CHECK (max_wall_seconds > 0),
    spent_cost_usd       numeric(12, 4) NOT NULL DEFAULT 0,
    spent_wall_seconds   double precision NOT NULL DEFAULT 0,
    spent_turns          integer NOT NULL DEFAULT 0,
    status               text NOT NULL DEFAULT 'pending' CHECK (status IN (
                           'pending', 'queued', 'preparing', 'planning', 'awaiting_approval',
                           'running', 'verifying', 'delivering',
                           'done', 'failed', 'blocked', 'cancelled')),
    status_reason        text NOT NULL DEFAULT '',
    plan                 jsonb,
    plan_approved_at     timestamptz,
    plan_rejected_at     timestamptz,
    plan_feedback        text,
    pr_url               text,
    branch               text,
    base_commit          text,
    head_commit          text,
    chat_id              bigint,
    thread_id            bigint,
    message_id           bigint,
    idea_id              bigint REFERENCES ideas (id) ON DELETE SET NULL,
    created_by           text NOT NULL DEFAULT 'cli',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    finished_at          timestamptz
);
CREATE INDEX tasks_status_idx ON tasks (status, priority, id);
CREATE INDEX tasks_repo_idx ON tasks (repo_id, id DESC);
ALTER TABLE ideas ADD CONSTRAINT ideas_task_fk FOREIGN KEY (task_id) REFERENCES tasks (id)
    ON DELETE SET NULL;

CREATE TABLE task_runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id          bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    phase            text NOT NULL CHECK (phase IN ('plan', 'attempt')),
    attempt          integer NOT NULL CHECK (attempt >= 1),
    backend          text NOT NULL,
    model            text,
    session_id       text,
    exit_code        integer,
    ok               boolean,
    cost_usd         numeric(12, 6),
    turns            integer,
    duration_seconds double precision,
    error_class      text,
    error_message    text NOT NULL DEFAULT '',
    output_tail      text NOT NULL DEFAULT '',
    verify           jsonb,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX task_runs_task_idx ON task_runs (task_id, id);

CREATE TABLE task_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_events_task_idx ON task_events (task_id, id);

-- Every event is announced on channel 'task_events' with a small JSON body; listeners
-- (bot outbox, web SSE) read the row itself by id.
CREATE FUNCTION task_events_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('task_events', json_build_object(
        'id', NEW.id, 'task_id', NEW.task_id, 'kind', NEW.kind)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER task_events_notify AFTER INSERT ON task_events
    FOR EACH ROW EXECUTE FUNCTION task_events_notify();

CREATE TABLE agent_memory (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repo_id      bigint NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    task_id      bigint REFERENCES tasks (id) ON DELETE SET NULL,
    outcome      text NOT NULL CHECK (outcome IN ('success', 'failure')),
    summary      text NOT NULL,
    files        text[] NOT NULL DEFAULT '{}',
    error_class  text,
    embedding    vector(256) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_memory_repo_idx ON agent_memory (repo_id);
CREATE INDEX agent_memory_embedding_idx ON agent_memory USING hnsw (embedding vector_cosine_ops);

CREATE TABLE artifacts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('patch', 'mbox', 'plan', 'log')),
    filename    text NOT NULL,
    content     bytea NOT NULL,
    sha256      text NOT NULL,
    size        integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, filename)
);

CREATE TABLE notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id          bigint NOT NULL,
    thread_id        bigint,
    task_id          bigint REFERENCES tasks (id) ON DELETE CASCADE,
    kind             text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}',
    dedupe_key       text NOT NULL UNIQUE,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE sent_at IS NULL;

CREATE TABLE worker_state (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO worker_state (key, value) VALUES ('paused', 'false');
