-- Content sent by PUT /logs and POST /logs/multi, held until the log workflow applies it.
-- The API stores the text here and the workflow update carries only the row's id and the
-- text's SHA-256 (a claim check), so log text never enters a Temporal history and a PUT is
-- not capped by Temporal's payload limit. The replace activity moves the text into
-- logs.content and deletes the row in one transaction.
CREATE TABLE log_uploads (
    id         bigserial   PRIMARY KEY,
    job_id     bigint      NOT NULL,
    content    text        NOT NULL,
    -- Hex SHA-256 of the content's UTF-8 bytes, checked again when the upload is applied.
    sha256     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Uploads whose update never ran (the API died in between) are swept by age.
CREATE INDEX log_uploads_created_at ON log_uploads (created_at);
