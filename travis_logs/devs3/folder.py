"""Objects of the local S3 as files: one body and one JSON header file per key."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# S3's own rule for bucket names: nothing in one can name a parent or another folder.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class OutsideFolder(ValueError):
    """A bucket name that is not S3's, or a path that would leave the folder."""


def valid_bucket(name: str) -> bool:
    return _BUCKET.fullmatch(name) is not None and ".." not in name


@dataclass(frozen=True)
class StoredObject:
    key: str
    body: bytes
    headers: dict[str, str]  # what a PUT of the object sends: type, metadata, checksum


@dataclass(frozen=True)
class StoredEntry:
    """An object in the folder, its body left on disk."""

    key: str
    body_path: Path
    headers: dict[str, str]


class ObjectFolder:
    """`root/<bucket>/<hex of key>.{body,json}`, each written atomically (rename after fsync)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def buckets(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(p.name for p in self._root.iterdir() if p.is_dir() and valid_bucket(p.name))

    def keys(self, bucket: str) -> set[str]:
        return {self._key_of(p) for p in self._bucket(bucket).glob("*.json")}

    def entries(self, bucket: str) -> Iterator[StoredEntry]:
        """Every object's key and headers; bodies are not read."""
        for meta in sorted(self._bucket(bucket).glob("*.json")):
            header = json.loads(meta.read_text(encoding="utf-8"))
            yield StoredEntry(header["key"], meta.with_suffix(".body"), header["headers"])

    def add_bucket(self, bucket: str) -> None:
        self._bucket(bucket).mkdir(parents=True, exist_ok=True)

    def remove_bucket(self, bucket: str) -> None:
        shutil.rmtree(self._bucket(bucket), ignore_errors=True)

    def save(self, bucket: str, obj: StoredObject) -> Path:
        """Body first, then the header file that makes the object exist; the body's path."""
        base = self._path(bucket, obj.key)
        base.parent.mkdir(parents=True, exist_ok=True)
        body = base.with_suffix(".body")
        _write(body, obj.body)
        header = {"key": obj.key, "headers": obj.headers}
        _write(base.with_suffix(".json"), json.dumps(header).encode())
        return body

    def body_path(self, bucket: str, key: str) -> Path:
        return self._path(bucket, key).with_suffix(".body")

    def remove(self, bucket: str, key: str) -> None:
        base = self._path(bucket, key)
        base.with_suffix(".json").unlink(missing_ok=True)
        base.with_suffix(".body").unlink(missing_ok=True)

    def _bucket(self, bucket: str) -> Path:
        if not valid_bucket(bucket):
            raise OutsideFolder(f"not an S3 bucket name: {bucket[:200]!r}")
        path = self._root / bucket
        # Belt and braces: whatever the name, the folder never leaves the root.
        if path.resolve().parent != self._root.resolve():
            raise OutsideFolder(f"bucket {bucket[:200]!r} resolves outside {self._root}")
        return path

    def _path(self, bucket: str, key: str) -> Path:
        # Hex keeps any key (slashes, dots, unicode) a single safe file name.
        return self._bucket(bucket) / key.encode().hex()

    @staticmethod
    def _key_of(meta: Path) -> str:
        return bytes.fromhex(meta.stem).decode()


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
