"""The lifecycle activities: thin, idempotent adapters over PostgreSQL and the S3 archive."""
