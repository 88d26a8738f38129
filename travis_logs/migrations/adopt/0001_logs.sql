-- Adopting a travis-logs database (reference §2.1, the 2016 Sequel schema, and §2.2, the
-- 2025 sqitch one): applied instead of 0001_logs.sql when `logs` exists already. It brings
-- the two tables to 0001's shape in place, without losing a row: the rows that the new
-- constraints forbid (two `logs` rows for one job, repeated part numbers, parts of no log)
-- move whole, as JSON, into adoption_merges. The first stored copy (lowest id) stays.
-- Columns of later travis-logs features (scan_status, ...) and their tables are left alone.

CREATE TABLE adoption_merges (
    id        bigserial   PRIMARY KEY,
    merged_at timestamptz NOT NULL DEFAULT now(),
    source    text        NOT NULL,  -- 'logs' or 'log_parts'
    -- duplicate_job_id, no_job_id (logs); duplicate_number, orphan_part, invalid_number (parts)
    reason    text        NOT NULL,
    job_id    bigint,
    kept_id   bigint,                -- the row kept in its place, when there is one
    row       jsonb       NOT NULL   -- the row as travis-logs stored it
);
CREATE INDEX adoption_merges_job_id ON adoption_merges (job_id);

-- Logs of no job can have no workflow (log_id: `logs.id`; their parts follow as orphans).
WITH gone AS (DELETE FROM logs WHERE job_id IS NULL RETURNING *)
INSERT INTO adoption_merges (source, reason, row)
SELECT 'logs', 'no_job_id', to_jsonb(gone) FROM gone;

-- Two rows for one job (the find-or-create race, reference §2.4): the first one stays and
-- takes the other rows' parts; a number both hold is settled below, first stored copy kept.
CREATE TEMPORARY TABLE adopt_duplicate_logs ON COMMIT DROP AS
SELECT l.id, k.kept_id
FROM logs l
JOIN (SELECT job_id, min(id) AS kept_id FROM logs GROUP BY job_id HAVING count(*) > 1) k
  USING (job_id)
WHERE l.id <> k.kept_id;

UPDATE log_parts p SET log_id = d.kept_id FROM adopt_duplicate_logs d WHERE p.log_id = d.id;

WITH gone AS (
    DELETE FROM logs l USING adopt_duplicate_logs d WHERE l.id = d.id
    RETURNING l.*, d.kept_id AS adopt_kept_id
)
INSERT INTO adoption_merges (source, reason, job_id, kept_id, row)
SELECT 'logs', 'duplicate_job_id', job_id, adopt_kept_id, to_jsonb(gone) - 'adopt_kept_id'
FROM gone;

-- Parts of no log (the original had no foreign key).
WITH gone AS (
    DELETE FROM log_parts p WHERE NOT EXISTS (SELECT 1 FROM logs l WHERE l.id = p.log_id)
    RETURNING *
)
INSERT INTO adoption_merges (source, reason, row)
SELECT 'log_parts', 'orphan_part', to_jsonb(gone) FROM gone;

-- Parts without a usable number cannot be placed in a log.
WITH gone AS (DELETE FROM log_parts WHERE number IS NULL OR number < 0 RETURNING *)
INSERT INTO adoption_merges (source, reason, job_id, row)
SELECT 'log_parts', 'invalid_number', (SELECT job_id FROM logs WHERE id = gone.log_id),
       to_jsonb(gone)
FROM gone;

-- A number stored twice (redelivered parts, reference §12.3): the first stored copy stays.
CREATE TEMPORARY TABLE adopt_duplicate_parts ON COMMIT DROP AS
SELECT p.id, k.kept_id
FROM log_parts p
JOIN (SELECT log_id, number, min(id) AS kept_id FROM log_parts
      GROUP BY log_id, number HAVING count(*) > 1) k
  USING (log_id, number)
WHERE p.id <> k.kept_id;

WITH gone AS (
    DELETE FROM log_parts p USING adopt_duplicate_parts d WHERE p.id = d.id
    RETURNING p.*, d.kept_id AS adopt_kept_id
)
INSERT INTO adoption_merges (source, reason, job_id, kept_id, row)
SELECT 'log_parts', 'duplicate_number', (SELECT job_id FROM logs WHERE id = gone.log_id),
       adopt_kept_id, to_jsonb(gone) - 'adopt_kept_id'
FROM gone;

-- 0001's types: bigint ids, timestamps in UTC (travis-logs wrote UTC without a zone, §2.1).
ALTER TABLE logs
    ALTER COLUMN id TYPE bigint,
    ALTER COLUMN job_id TYPE bigint,
    ALTER COLUMN removed_by TYPE bigint,
    ALTER COLUMN created_at TYPE timestamptz USING created_at AT TIME ZONE 'UTC',
    ALTER COLUMN updated_at TYPE timestamptz USING updated_at AT TIME ZONE 'UTC',
    ALTER COLUMN aggregated_at TYPE timestamptz USING aggregated_at AT TIME ZONE 'UTC',
    ALTER COLUMN archived_at TYPE timestamptz USING archived_at AT TIME ZONE 'UTC',
    ALTER COLUMN purged_at TYPE timestamptz USING purged_at AT TIME ZONE 'UTC',
    ALTER COLUMN removed_at TYPE timestamptz USING removed_at AT TIME ZONE 'UTC';

UPDATE logs SET created_at = COALESCE(created_at, updated_at, now()),
                updated_at = COALESCE(updated_at, created_at, now()),
                archiving = COALESCE(archiving, false)
WHERE created_at IS NULL OR updated_at IS NULL OR archiving IS NULL;

ALTER TABLE logs
    ALTER COLUMN job_id SET NOT NULL,
    ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at SET NOT NULL,
    ALTER COLUMN updated_at SET DEFAULT now(),
    ALTER COLUMN archiving SET NOT NULL,
    ALTER COLUMN archiving SET DEFAULT false,
    ADD COLUMN final_number integer,
    ADD CONSTRAINT logs_job_id_key UNIQUE (job_id);

ALTER TABLE log_parts
    ALTER COLUMN id TYPE bigint,
    ALTER COLUMN log_id TYPE bigint,
    ALTER COLUMN created_at TYPE timestamptz USING created_at AT TIME ZONE 'UTC';

-- A part without a time is as old as travis-logs' own default made it (2000-01-01, §2.2):
-- overdue, so the force timeout takes it at once.
UPDATE log_parts SET final = COALESCE(final, false),
                     created_at = COALESCE(created_at, '2000-01-01 00:00:00+00')
WHERE final IS NULL OR created_at IS NULL;

ALTER TABLE log_parts
    ALTER COLUMN number SET NOT NULL,
    ALTER COLUMN final SET NOT NULL,
    ALTER COLUMN final SET DEFAULT false,
    ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN created_at SET DEFAULT now(),
    ADD CONSTRAINT log_parts_number_check CHECK (number >= 0),
    ADD CONSTRAINT log_parts_log_id_fkey FOREIGN KEY (log_id) REFERENCES logs (id) ON DELETE CASCADE,
    ADD CONSTRAINT log_parts_log_id_number_key UNIQUE (log_id, number);

-- serial sequences were integers; ids now go on as bigints.
DO $$
DECLARE
    seq text;
BEGIN
    FOR seq IN SELECT pg_get_serial_sequence(t, 'id') FROM unnest(ARRAY['logs', 'log_parts']) t
    LOOP
        IF seq IS NOT NULL THEN
            EXECUTE format('ALTER SEQUENCE %s AS bigint', seq);
        END IF;
    END LOOP;
END $$;

-- The final number outlives the parts from here on (0001); travis-logs kept it in the parts.
UPDATE logs l SET final_number = f.number
FROM (SELECT log_id, max(number) AS number FROM log_parts WHERE final GROUP BY log_id) f
WHERE l.id = f.log_id;

-- 0001's indexes in place of travis-logs' (the unique constraints cover job_id and
-- (log_id, number)).
DROP INDEX IF EXISTS index_logs_on_job_id, index_logs_on_archive_verified,
    index_logs_on_archived_at, index_log_parts_on_log_id_and_number,
    index_log_parts_on_created_at;
CREATE INDEX log_parts_log_id_created_at ON log_parts (log_id, created_at);
CREATE INDEX log_parts_created_at ON log_parts (created_at);
CREATE INDEX logs_archive_verified ON logs (archive_verified) WHERE purged_at IS NULL;
CREATE INDEX logs_archived_at ON logs (archived_at);

ALTER TABLE log_parts SET (autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0.001);
