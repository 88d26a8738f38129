"""Object bodies that moto reads from the folder's files instead of holding them in memory.

moto keeps each body in a SpooledTemporaryFile (in memory below about 5 MB, in an open
temporary file above). The embedded S3 swaps that buffer, once the folder holds the body, for
a `FileBody` naming the folder's file: the server's memory and open files then do not grow
with what it stores, and a restart needs no body read back.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any


class FileBody:
    """The part of a file object's interface moto's FakeKey uses, reading a file on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._position = 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._position
        elif whence == os.SEEK_END:
            offset += self.path.stat().st_size
        self._position = offset
        return offset

    def tell(self) -> int:
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        with self.path.open("rb") as handle:
            handle.seek(self._position)
            data = handle.read(-1 if size is None else size)
        self._position += len(data)
        return data

    def write(self, data: bytes) -> int:
        # moto gives a changed object a new key (and buffer); a stored body never changes.
        raise io.UnsupportedOperation("a stored body is read-only")

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation("a stored body is read-only")

    def close(self) -> None:
        """Nothing is open; the folder removes the file when the object goes."""


def attach(key: Any, path: Path) -> None:
    """Point moto's key at the body in `path`, dropping the copy it held."""
    size = path.stat().st_size
    with key.lock:  # moto reads a body under this lock
        held, key._value_buffer = key._value_buffer, FileBody(path)
        key.contentsize = size
    held.close()


def is_file_backed(key: Any) -> bool:
    return isinstance(key._value_buffer, FileBody)
