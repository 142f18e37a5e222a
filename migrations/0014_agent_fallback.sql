-- A repo's fallback agent (worker/implement.py): when the model API refuses a run of the
-- primary backend (rate limit, overload, out of quota), the same attempt runs again at once
-- with this backend and/or model. Both NULL: no fallback. A backend alone: that backend with
-- its default model; a model alone: the primary backend with that model. It must differ from
-- the repo's own choice (a task's own choice is compared when it runs).
ALTER TABLE repos
    ADD COLUMN fallback_backend text CHECK (fallback_backend <> ''),
    ADD COLUMN fallback_model   text CHECK (fallback_model <> ''),
    ADD CONSTRAINT repos_fallback_differs CHECK (
        (fallback_backend IS NULL AND fallback_model IS NULL)
        OR (coalesce(fallback_backend, agent_backend), fallback_model)
           IS DISTINCT FROM (agent_backend, agent_model)
    );
