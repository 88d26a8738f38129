"""moto's S3 as a WSGI app that writes every change through to an ObjectFolder.

A write is answered only after the folder holds it, so an archive that the lifecycle has
verified (and then purged from the database) survives a restart of `travis-logs dev`.
At start the folder's objects are listed back through the same app, before the port
opens; their bodies stay in the folder's files, read when asked for (travis_logs.devs3.bodies).

Requests are path-style to a loopback host only, with bucket names as S3 allows them and
keys without `.`/`..` segments, backslashes or a leading slash: anything else is refused
with 400 before moto sees it, so that no request can name a file outside the folder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import s3_backends
from werkzeug.test import Client

from travis_logs.devs3.bodies import attach, is_file_backed
from travis_logs.devs3.folder import ObjectFolder, StoredObject, valid_bucket

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_WRITES = {"PUT", "POST", "DELETE"}
_LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
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


def _backend() -> Any:
    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _restore(app: WSGIApp, folder: ObjectFolder) -> None:
    """Each object as an empty PUT with its headers, then its body pointed at its file."""
    client = Client(app)
    for bucket in folder.buckets():
        client.put(f"/{bucket}", headers=_LOCAL)
        keys = _backend().buckets[bucket].keys
        for entry in folder.entries(bucket):
            client.put(
                f"/{bucket}/{quote(entry.key)}", data=b"", headers={**_LOCAL, **entry.headers}
            )
            key = keys[entry.key]
            attach(key, entry.body_path)
            key._etag = None  # moto's was the empty body's: computed again from the file


def refusal(environ: dict[str, Any]) -> str | None:
    """Why a request may not reach moto, or None; PATH_INFO is decoded once, as moto does."""
    host = environ.get("HTTP_HOST", "127.0.0.1")
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    if name not in _LOOPBACK:
        return "this S3 serves path-style requests to 127.0.0.1 only"
    path: str = environ.get("PATH_INFO", "")
    if path.startswith("/moto-api"):
        return None
    bucket, _, key = path.removeprefix("/").partition("/")
    if (bucket or key) and not valid_bucket(bucket):
        return "not an S3 bucket name"
    if key and (
        key.startswith("/")
        or "\\" in key
        or "\0" in key
        or any(part in {".", ".."} for part in key.split("/"))
    ):
        return "keys with '.' or '..' segments, backslashes or a leading '/' are refused"
    return None


def _refuse(reason: str, start_response: Callable[..., Any]) -> list[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>InvalidArgument</Code><Message>{reason}</Message></Error>"
    ).encode()
    start_response(
        "400 Bad Request",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]


class _Mirror:
    def __init__(self, app: WSGIApp, folder: ObjectFolder) -> None:
        self._app = app
        self._folder = folder
        self._lock = threading.Lock()  # one write at a time keeps folder and backend in step

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        reason = refusal(environ)
        if reason is not None:
            return _refuse(reason, start_response)
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
                self._sync(environ["PATH_INFO"])
        return [body]

    def _sync(self, path: str) -> None:
        bucket, _, key = path.removeprefix("/").partition("/")
        backend = _backend()
        if not bucket:
            return
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
        elif not is_file_backed(found):  # a file-backed body is the folder's already
            body = self._folder.save(bucket, StoredObject(key, found.value, _put_headers(found)))
            if not backend.buckets[bucket].is_versioned:  # older versions keep their own copy
                attach(found, body)


def _put_headers(found: Any) -> dict[str, str]:
    headers = {k: v for k, v in found.metadata.items() if k.startswith("x-amz-meta-")}
    headers["Content-Type"] = found.metadata.get("content-type", "binary/octet-stream")
    # A multipart object's checksum is of its parts' checksums: restored by one PUT, it
    # would pass for the whole object's and fail every read; such an object keeps none.
    composite = getattr(found, "checksum_type", None) == "COMPOSITE"
    if found.checksum_algorithm and found.checksum_value and not composite:
        algorithm = found.checksum_algorithm.lower()
        headers[f"x-amz-checksum-{algorithm}"] = found.checksum_value
        headers["x-amz-sdk-checksum-algorithm"] = found.checksum_algorithm
    return headers
