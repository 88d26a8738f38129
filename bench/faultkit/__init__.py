"""The fault rounds of bench/faults.py: private services, the stack, the S3 fault proxy, the oracle."""
