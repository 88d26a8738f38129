"""A travis-worker simulator: realistic job logs, cut and published as the worker does.

content   -> the job's output as timed writes (folds, timers, colours, UTF-8, odd bytes)
cutter    -> travis-worker's parts: flushed every 500 ms of job time, at most 1,653 bytes
job       -> one job: its parts, its expected log and its send schedule
faults    -> duplicates, reordering, late parts, poison messages
sinks     -> AMQP (as travis-worker) or the HTTP part routes
runner    -> many jobs, concurrently, at a chosen speed
manifest  -> what was sent, per job; verify compares archives with it
"""
