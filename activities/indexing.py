"""The archived log's index, `jobs/<id>/log.index.json`: built from the log's bytes as they
stream past (to S3 in the archive round, back from it in verify), written beside the log and
checked with it.

An index describes one content version: its object carries that version, the SHA-256 of the
log it describes and its own SHA-256 (travis_logs.archive_store), so `index_problem` tells
the archived log's index from a stale, damaged or missing one. Arrival times come from the
stored parts, which purge deletes only after the archive is verified, so an archive round
still finds them (an index rebuilt after purge has none).
"""

from __future__ import annotations

import json

import asyncpg

from travis_logs.archive_store import ArchiveStore, StoredIndex
from travis_logs.log_index import IndexBuilder
from travis_logs.stored_index import archived_parts
from travis_logs.transfer import Progress


def index_problem(stored: StoredIndex | None, version: int, sha256: str, size: int) -> str:
    """Why `stored` is not the index of the log (`version`, `sha256`, `size`); empty if it is."""
    if stored is None:
        return "the index is missing"
    if not stored.intact:
        return "the index does not match its checksum"
    if stored.version != version:
        return f"the index describes content version {stored.version}, not {version}"
    if stored.log_sha256 != sha256:
        return "the index describes another text of this version"
    try:
        shape = json.loads(stored.body)
    except ValueError:
        return "the index is not JSON"
    if not isinstance(shape, dict) or shape.get("size") != size:
        return f"the index is not of a {size}-byte log"
    return ""


async def write_index(
    pool: asyncpg.Pool,
    store: ArchiveStore,
    log_id: int,
    job_id: int,
    builder: IndexBuilder,
    *,
    version: int,
    sha256: str,
    progress: Progress | None = None,
) -> bool:
    """Write the index of content version `version`, whose whole text `builder` was fed;
    False (nothing written) when the log holds another version now: its round indexes it."""
    parts = await archived_parts(pool, log_id, version)
    if parts is None:
        return False
    index = builder.finish(parts.numbers, parts.sizes, parts.arrivals)
    encoded = json.dumps(index.to_json(), separators=(",", ":")).encode()
    await store.put_index(job_id, encoded, version=version, log_sha256=sha256, progress=progress)
    return True
