-- What reconciliation (`travis-logs reconcile` and the sweeper) reads, and the content
-- version of logs adopted from travis-logs.
--
-- A log is done when it holds no content and no parts: nothing is left to aggregate,
-- archive or purge. The rest are found through two small indexes, in id order (keyset
-- pages), however many done logs the table holds: logs with content (aggregated, not purged
-- yet) and logs with stored parts (log_parts_log_id_created_at, from 0001).
CREATE INDEX logs_with_content ON logs (id) WHERE content IS NOT NULL;

-- Content travis-logs aggregated is version 1 of the log (0002 counts from 0 = nothing
-- aggregated yet, which an adopted log with content is not). Only adopted logs match.
UPDATE logs SET content_version = 1
WHERE content_version = 0 AND (content IS NOT NULL OR purged_at IS NOT NULL)
  AND to_regclass('public.adoption_merges') IS NOT NULL;

-- Where the sweeper's bounded passes over the logs table stand between runs.
CREATE TABLE reconcile_cursor (
    name       text        PRIMARY KEY,
    last_id    bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
