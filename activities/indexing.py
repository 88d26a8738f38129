"""The archived log's index: built from the log's bytes as they stream past (to S3 in the
archive round, back from it in verify), kept in the log's row when small (`archive_index`,
recorded with the archive it describes), else written beside the log in S3 as
`jobs/<id>/log.index.json` and checked with it.

An index in S3 describes one content version: its object carries that version, the SHA-256 of the
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
from travis_logs.stored_index import HeldParts, archived_parts
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


# An index of at most this many bytes is kept in the log's row (`logs.archive_index`), written
# by the statement that records the archive: no S3 request of its own (a lifecycle then costs
# S3 a PUT and a GET). A 120-part log's index takes about 3 KiB; this holds logs of about a
# thousand parts. Larger ones go beside the log in S3.
ROW_INDEX_MAX_BYTES = 32 * 1024

# The index of the recorded archive, when verify rebuilt it (the archive round did not).
_ROW_INDEX = """
UPDATE logs SET archive_index = $3
WHERE job_id = $1 AND archive_version = $2 AND archive_sha256 = $4
"""


async def encode_index(
    pool: asyncpg.Pool,
    log_id: int,
    builder: IndexBuilder,
    version: int,
    held: HeldParts | None = None,
) -> bytes | None:
    """The index of content version `version`, whose whole text `builder` was fed, as JSON;
    None when the log holds another version now: its round indexes it. `held`: that
    version's parts, when the caller read them with its text (else they are read here)."""
    parts = held if held is not None else await archived_parts(pool, log_id, version)
    if parts is None:
        return None
    index = builder.finish(parts.numbers, parts.sizes, parts.arrivals)
    return json.dumps(index.to_json(), separators=(",", ":")).encode()


async def write_index(
    pool: asyncpg.Pool,
    store: ArchiveStore,
    log_id: int,
    job_id: int,
    builder: IndexBuilder,
    *,
    version: int,
    sha256: str,
    row_max_bytes: int = ROW_INDEX_MAX_BYTES,
    progress: Progress | None = None,
) -> bool:
    """Write the index of the recorded archive (`version`, `sha256`): in its row when at
    most `row_max_bytes`, else beside it in S3. False (nothing written) when the log holds
    another version now."""
    encoded = await encode_index(pool, log_id, builder, version)
    if encoded is None:
        return False
    if len(encoded) <= row_max_bytes:
        status: str = await pool.execute(_ROW_INDEX, job_id, version, encoded, sha256)
        return status != "UPDATE 0"
    await store.put_index(job_id, encoded, version=version, log_sha256=sha256, progress=progress)
    await pool.execute(_ROW_INDEX, job_id, version, None, sha256)
    return True
