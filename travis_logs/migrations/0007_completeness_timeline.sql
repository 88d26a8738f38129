-- A log's lifecycle as timestamps (GET /logs/:id `timeline`, the viewer's header).
--
-- aggregated_at, archived_at and purged_at exist since 0001 (travis-api reads them, and they
-- are reset when the content changes). Completeness needs nothing new: final_number and the
-- part index (part_numbers, part_sizes) outlive purge, so the missing numbers and where
-- they sit in the log are known from the row alone, also once the content is in S3.
ALTER TABLE logs
    -- Set by the ingest in the statements that store the batch: the first part stored, and
    -- the (highest) final part stored.
    ADD COLUMN first_part_at timestamptz,
    ADD COLUMN final_part_at timestamptz,
    -- When the archive was read back and found equal (archive_verified became true).
    ADD COLUMN verified_at   timestamptz,
    -- When PUT /logs last replaced or cleared the content.
    ADD COLUMN replaced_at   timestamptz;
