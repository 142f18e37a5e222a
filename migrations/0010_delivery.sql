-- Delivery (worker/deliver.py): where a task's change goes, and what the pre-PR preflight
-- lets through. A forge with an API needs its base URL and owner/name; its token is read
-- from the worker's environment, by the variable named here (never stored in the database).

ALTER TABLE repos
    ADD COLUMN forge_token_env text CHECK (forge_token_env ~ '^[A-Z][A-Z0-9_]{0,62}_TOKEN$'),
    ADD COLUMN allow_binary boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT repos_forge_complete CHECK (
        forge_kind = 'local'
        OR (forge_base_url IS NOT NULL AND forge_owner IS NOT NULL AND forge_name IS NOT NULL));
