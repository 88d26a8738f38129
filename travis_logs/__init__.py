"""travis-logs: Travis CI job logs on Temporal."""
