-- What the log lifecycle (aggregate, archive, verify, purge) keeps on the logs row.
--
-- Aggregation merges parts into `content` and records which parts it holds, in number order,
-- as two parallel arrays (the part index). Parts stay in log_parts until purge, which deletes
-- exactly the numbers in the index of the verified archive. After purge the index is what
-- lets a late part be merged into the archived log in number order: the archive is fetched,
-- cut at the recorded part sizes and spliced. Bytes before the indexed parts (content set by
-- PUT /logs, or adopted from an older travis-logs database) are kept in front as they are.
ALTER TABLE logs
    -- Bumped whenever `content` changes (aggregation that merged parts, PUT /logs); the
    -- archive records the version it holds, so a stale upload cannot pass for a newer one.
    ADD COLUMN content_version bigint   NOT NULL DEFAULT 0,
    ADD COLUMN part_numbers    integer[] NOT NULL DEFAULT '{}',
    -- UTF-8 byte size of each indexed part, in the order of part_numbers.
    ADD COLUMN part_sizes      integer[] NOT NULL DEFAULT '{}',
    -- The object at jobs/<job_id>/log.txt as last written: its content version, size and
    -- SHA-256 (hex). archive_verified says whether it was read back and found equal.
    ADD COLUMN archive_version bigint,
    ADD COLUMN archive_size    bigint,
    ADD COLUMN archive_sha256  text,
    -- The workflow's id for the last PUT /logs it applied, so a retried replace is a no-op.
    ADD COLUMN replace_request text,
    ADD CONSTRAINT logs_part_index_aligned
        CHECK (cardinality(part_numbers) = cardinality(part_sizes));
