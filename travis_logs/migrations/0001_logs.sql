-- travis-logs' two tables, with the uniqueness the original lacked (reference §2, §12.3, §12.6).
-- Timestamps are timestamptz: stored as UTC whatever the session's time zone.

CREATE TABLE logs (
    id               bigserial PRIMARY KEY,
    job_id           bigint      NOT NULL,
    content          text,
    removed_by       bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    aggregated_at    timestamptz,
    archived_at      timestamptz,
    purged_at        timestamptz,
    removed_at       timestamptz,
    archiving        boolean     NOT NULL DEFAULT false,
    archive_verified boolean,
    -- Not in the original: the number of the final part once one is stored. It outlives the
    -- parts (purge deletes them), so a part arriving later is known to be late.
    final_number     integer,
    CONSTRAINT logs_job_id_key UNIQUE (job_id)
);

CREATE TABLE log_parts (
    id         bigserial PRIMARY KEY,
    log_id     bigint      NOT NULL REFERENCES logs (id) ON DELETE CASCADE,
    content    text,
    number     integer     NOT NULL CHECK (number >= 0),
    final      boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT log_parts_log_id_number_key UNIQUE (log_id, number)
);

-- The force timeout reads the newest part of one log: (log_id, created_at) answers it from the index.
CREATE INDEX log_parts_log_id_created_at ON log_parts (log_id, created_at);
-- Reconciliation sweeps look for old parts across all logs.
CREATE INDEX log_parts_created_at ON log_parts (created_at);
-- Operators and the API look for logs that are archived but not verified, or not yet purged.
CREATE INDEX logs_archive_verified ON logs (archive_verified) WHERE purged_at IS NULL;
CREATE INDEX logs_archived_at ON logs (archived_at);

-- log_parts churns (insert, aggregate, delete): vacuum it eagerly, as the original learned to.
ALTER TABLE log_parts SET (autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0.001);
