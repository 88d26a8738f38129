"""Objects of the local S3 as files: one body and one JSON header file per key."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredObject:
    key: str
    body: bytes
    headers: dict[str, str]  # what a PUT of the object sends: type, metadata, checksum


class ObjectFolder:
    """`root/<bucket>/<hex of key>.{body,json}`, each written atomically (rename after fsync)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def buckets(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(p.name for p in self._root.iterdir() if p.is_dir())

    def keys(self, bucket: str) -> set[str]:
        return {self._key_of(p) for p in (self._root / bucket).glob("*.json")}

    def objects(self, bucket: str) -> Iterator[StoredObject]:
        for meta in sorted((self._root / bucket).glob("*.json")):
            header = json.loads(meta.read_text(encoding="utf-8"))
            body = meta.with_suffix(".body").read_bytes()
            yield StoredObject(header["key"], body, header["headers"])

    def add_bucket(self, bucket: str) -> None:
        (self._root / bucket).mkdir(parents=True, exist_ok=True)

    def remove_bucket(self, bucket: str) -> None:
        shutil.rmtree(self._root / bucket, ignore_errors=True)

    def save(self, bucket: str, obj: StoredObject) -> None:
        """Body first, then the header file that makes the object exist."""
        base = self._path(bucket, obj.key)
        base.parent.mkdir(parents=True, exist_ok=True)
        _write(base.with_suffix(".body"), obj.body)
        header = {"key": obj.key, "headers": obj.headers}
        _write(base.with_suffix(".json"), json.dumps(header).encode())

    def remove(self, bucket: str, key: str) -> None:
        base = self._path(bucket, key)
        base.with_suffix(".json").unlink(missing_ok=True)
        base.with_suffix(".body").unlink(missing_ok=True)

    def _path(self, bucket: str, key: str) -> Path:
        # Hex keeps any key (slashes, dots, unicode) a single safe file name.
        return self._root / bucket / key.encode().hex()

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
