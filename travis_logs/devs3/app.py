"""moto's S3 as a WSGI app that writes every change through to an ObjectFolder.

A write is answered only after the folder holds it, so an archive that the lifecycle has
verified (and then purged from the database) survives a restart of `travis-logs dev`.
At start the folder is loaded back through the same app, before the port opens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import s3_backends
from werkzeug.test import Client

from travis_logs.devs3.folder import ObjectFolder, StoredObject

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_WRITES = {"PUT", "POST", "DELETE"}
# moto picks the service from the request's credential scope; any signature is accepted.
_LOCAL = {
    "Host": "127.0.0.1",
    "Authorization": "AWS4-HMAC-SHA256 Credential=dev/20260101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0",
}


def persistent_s3(folder: ObjectFolder) -> WSGIApp:
    """The moto S3 app holding what `folder` holds, and keeping the folder up to date."""
    app: WSGIApp = DomainDispatcherApplication(create_backend_app)
    _restore(app, folder)
    return _Mirror(app, folder)


def _restore(app: WSGIApp, folder: ObjectFolder) -> None:
    client = Client(app)
    for bucket in folder.buckets():
        client.put(f"/{bucket}", headers=_LOCAL)
        for obj in folder.objects(bucket):
            client.put(f"/{bucket}/{obj.key}", data=obj.body, headers={**_LOCAL, **obj.headers})


class _Mirror:
    def __init__(self, app: WSGIApp, folder: ObjectFolder) -> None:
        self._app = app
        self._folder = folder
        self._lock = threading.Lock()  # one write at a time keeps folder and backend in step

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["REQUEST_METHOD"] not in _WRITES or environ["PATH_INFO"].startswith("/moto-"):
            return self._app(environ, start_response)
        status: list[str] = []

        def capture(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        with self._lock:
            # Read the whole answer first: the client sees it only after the folder is synced.
            body = b"".join(self._app(environ, capture))
            if status and status[0].startswith("2"):
                self._sync(unquote(environ["PATH_INFO"]))
        return [body]

    def _sync(self, path: str) -> None:
        bucket, _, key = path.lstrip("/").partition("/")
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        if bucket not in backend.buckets:
            self._folder.remove_bucket(bucket)
            return
        self._folder.add_bucket(bucket)
        # A bucket-level write (DeleteObjects, ...) may touch any key: compare them all.
        keys = {key} if key else set(backend.buckets[bucket].keys) | self._folder.keys(bucket)
        for name in keys:
            self._sync_key(backend, bucket, name)

    def _sync_key(self, backend: Any, bucket: str, key: str) -> None:
        found = backend.buckets[bucket].keys.get(key)  # the current version
        if found is None:
            self._folder.remove(bucket, key)
        else:
            self._folder.save(bucket, StoredObject(key, found.value, _put_headers(found)))


def _put_headers(found: Any) -> dict[str, str]:
    headers = {k: v for k, v in found.metadata.items() if k.startswith("x-amz-meta-")}
    headers["Content-Type"] = found.metadata.get("content-type", "binary/octet-stream")
    if found.checksum_algorithm and found.checksum_value:
        algorithm = found.checksum_algorithm.lower()
        headers[f"x-amz-checksum-{algorithm}"] = found.checksum_value
        headers["x-amz-sdk-checksum-algorithm"] = found.checksum_algorithm
    return headers
