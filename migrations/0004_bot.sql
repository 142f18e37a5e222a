-- What the Telegram bot needs: cancel requests the worker obeys, outbox give-up and
-- per-chat order, the guided-dialog state that survives restarts, and indexes for the
-- bot's queries (/tasks, /status) so they stay fast with many tasks.

ALTER TABLE tasks ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE tasks ADD COLUMN cancel_requested_by text;

-- /tasks pages by id; /status counts what finished today.
CREATE INDEX tasks_status_id_idx ON tasks (status, id DESC);
CREATE INDEX tasks_finished_idx ON tasks (finished_at) WHERE finished_at IS NOT NULL;

-- Notifications: a row that can never be delivered (bot blocked, chat gone) is given up,
-- not retried for ever; its head-of-chat order is kept by id.
ALTER TABLE notifications ADD COLUMN given_up_at timestamptz;
DROP INDEX notifications_due_idx;
CREATE INDEX notifications_pending_idx ON notifications (chat_id, id)
    WHERE sent_at IS NULL AND given_up_at IS NULL;

-- aiogram FSM state of guided dialogs (/new), keyed like aiogram's StorageKey.
CREATE TABLE bot_dialogs (
    bot_id      bigint NOT NULL,
    chat_id     bigint NOT NULL,
    user_id     bigint NOT NULL,
    thread_id   bigint NOT NULL DEFAULT 0,
    destiny     text NOT NULL DEFAULT 'default',
    state       text,
    data        jsonb NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, chat_id, user_id, thread_id, destiny)
);
