-- The index of an archived log (travis_logs/log_index.py, as JSON) when it is small, which
-- it is for all but logs of thousands of parts: written in the statement that records the
-- archive, so it costs no S3 request of its own, and kept with the row after purge (its
-- arrival times exist nowhere else by then). NULL: the index lies beside the log in S3,
-- jobs/<job_id>/log.index.json. It always describes `archive_version`: both change in one
-- statement. Nullable with no default: adding it rewrites no row.
ALTER TABLE logs ADD COLUMN archive_index bytea;
