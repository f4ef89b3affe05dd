-- `userstream snapshot`: current rows re-emitted through the change log as op 'r', and how far
-- each snapshot got, so that one interrupted resumes where it stopped.

-- 'r' joins the ops (an image of the current row, like 'u' for everything downstream). The
-- constraint is replaced under its generated name so that running this file twice is harmless.
ALTER TABLE user_changes DROP CONSTRAINT IF EXISTS user_changes_op_check;
ALTER TABLE user_changes
    ADD CONSTRAINT user_changes_op_check CHECK (op IN ('c', 'u', 'd', 'r'));

CREATE TABLE IF NOT EXISTS snapshots (
    -- Chosen by the operator (`--name`); a snapshot is resumed by running it again by name.
    name          text PRIMARY KEY,
    -- Which users it re-emits (`--id`, `--nat`, `--country`), so that a resume with other
    -- filters is refused rather than leaving a mix of both behind.
    filter        jsonb NOT NULL,
    -- The checkpoint: every matching user up to this id (in `users`' id order) has been
    -- re-emitted; null before the first batch. Advanced in the transaction that logs the batch.
    last_user_id  text,
    -- Images logged so far, and the batches that logged them.
    emitted       bigint NOT NULL DEFAULT 0,
    batches       bigint NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- Set when the walk reached the last user; null while unfinished.
    finished_at   timestamptz
);
