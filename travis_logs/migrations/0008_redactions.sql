-- Audited redaction (README "Redaction"): an operator masks leaked secrets in one log.
--
-- log_redactions is the audit trail and the claim check of the `redact` update: who asked,
-- why, the SHA-256 of each literal string and the byte ranges, and once applied how many
-- occurrences were masked. It never holds a secret.
CREATE TABLE log_redactions (
    id              bigserial   PRIMARY KEY,
    job_id          bigint      NOT NULL,
    requested_by    text        NOT NULL,
    reason          text        NOT NULL,
    -- Hex SHA-256 of each literal string's UTF-8 bytes, in the order they were given.
    string_sha256   text[]      NOT NULL DEFAULT '{}',
    -- Byte ranges [start, end) of the log as it was when the request was applied.
    range_starts    bigint[]    NOT NULL DEFAULT '{}',
    range_ends      bigint[]    NOT NULL DEFAULT '{}',
    requested_at    timestamptz NOT NULL DEFAULT now(),
    applied_at      timestamptz,
    occurrences     integer,
    -- The content version the redaction wrote; NULL when it changed nothing.
    content_version bigint,
    -- Why the request was refused (a range off a character boundary, no log); never retried.
    error           text,
    CONSTRAINT log_redactions_ranges_aligned
        CHECK (cardinality(range_starts) = cardinality(range_ends))
);

CREATE INDEX log_redactions_job_id ON log_redactions (job_id, id);

-- The literal strings themselves, which must be kept: parts that arrive later are masked
-- with them (ingest) and so is the merged log (aggregation). A row is inactive from the
-- API's insert until the redaction is applied; refused requests delete theirs. This is
-- the one table that holds secrets: grant it like logs.content.
CREATE TABLE log_redaction_rules (
    id           bigserial PRIMARY KEY,
    job_id       bigint    NOT NULL,
    redaction_id bigint    NOT NULL REFERENCES log_redactions (id) ON DELETE CASCADE,
    secret       text      NOT NULL CHECK (secret <> ''),
    active       boolean   NOT NULL DEFAULT false
);

-- The ingest's batch lookup (folded into its logs query) probes this per job.
CREATE INDEX log_redaction_rules_active ON log_redaction_rules (job_id) WHERE active;
CREATE INDEX log_redaction_rules_redaction ON log_redaction_rules (redaction_id);
