"""LogWorkflow and the dataclasses that cross its boundary (sandbox-safe: no I/O imports)."""
