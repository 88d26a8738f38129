"""The embedded S3 holds no object body in memory and never writes outside its folder."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from werkzeug.serving import make_server

from tests.helpers import free_port
from tests.travis_logs.devs3.test_devs3 import s3_server
from travis_logs.devs3.app import persistent_s3, refusal
from travis_logs.devs3.bodies import FileBody
from travis_logs.devs3.folder import ObjectFolder, OutsideFolder
from travis_logs.s3 import s3_client
from travis_logs.settings import Settings


def _bodies(count: int) -> dict[str, bytes]:
    rng = random.Random(20)
    found = {f"jobs/{n}/log.txt": rng.randbytes(rng.randint(1, 20_000)) for n in range(count)}
    found["large/one"] = rng.randbytes(6 * 2**20)  # above moto's in-memory threshold
    return found


@contextmanager
def in_process_server(folder: Path) -> Iterator[str]:
    """The server `travis-logs s3-server` runs, in a thread, so that its keys can be read."""
    server = make_server(
        "127.0.0.1", free_port(), persistent_s3(ObjectFolder(folder)), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def _keys(bucket: str) -> dict[str, object]:
    store = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys
    return {name: store[name] for name in store}


def _held_in_memory(bucket: str, folder: Path) -> list[str]:
    """Keys whose body is anything but a file of the folder."""
    return [
        name
        for name, key in _keys(bucket).items()
        if not (
            isinstance(key._value_buffer, FileBody)  # type: ignore[attr-defined]
            and key._value_buffer.path.parent.parent == folder  # type: ignore[attr-defined]
        )
    ]


@pytest.mark.services  # starts the embedded S3 server
async def test_stored_bodies_are_read_from_the_folder_not_held(tmp_path: Path) -> None:
    """Many objects through the server: none is held in memory, before or after a restart."""
    bucket = f"bounds-{uuid.uuid4().hex[:12]}"
    bodies = _bodies(300)
    first = tmp_path / "first"
    with in_process_server(first) as url:
        async with s3_client(Settings(_env_file=None, s3_endpoint_url=url)) as s3:
            await s3.create_bucket(Bucket=bucket)
            for key, body in bodies.items():
                await s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"v": "1"})
            assert _held_in_memory(bucket, first) == []
            got = await s3.get_object(Bucket=bucket, Key="large/one")
            assert await got["Body"].read() == bodies["large/one"]
    # A restart loads a copy of the folder (under another bucket name, moto's state being
    # this process's): every body stays in its file.
    second, restored = tmp_path / "second", f"bounds-{uuid.uuid4().hex[:12]}"
    shutil.copytree(first / bucket, second / restored)
    with in_process_server(second) as url:
        assert set(_keys(restored)) == set(bodies)
        assert _held_in_memory(restored, second) == []
        async with s3_client(Settings(_env_file=None, s3_endpoint_url=url)) as s3:
            for key in random.Random(3).sample(sorted(bodies), 20) + ["large/one"]:
                got = await s3.get_object(Bucket=restored, Key=key)
                assert await got["Body"].read() == bodies[key]
                assert got["Metadata"] == {"v": "1"}
                assert got["ContentLength"] == len(bodies[key])


@pytest.mark.services  # starts the embedded S3 server
async def test_many_objects_survive_a_restart_byte_exact(tmp_path: Path) -> None:
    bodies = _bodies(200)
    port = free_port()
    async with s3_server(tmp_path, port) as store:
        s3 = store().client
        await s3.create_bucket(Bucket="travis-logs")
        for key, body in bodies.items():
            await s3.put_object(Bucket="travis-logs", Key=key, Body=body)
        etags = {k: (await s3.head_object(Bucket="travis-logs", Key=k))["ETag"] for k in bodies}
    async with s3_server(tmp_path, port) as store:
        s3 = store().client
        for key, body in bodies.items():
            got = await s3.get_object(Bucket="travis-logs", Key=key)
            assert await got["Body"].read() == body
            assert got["ETag"] == etags[key]


async def _raw(port: int, method: str, target: str, host: str) -> int:
    """One request exactly as written (no client normalises its path); the status code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 4\r\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=dev/20260101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\nevil".encode()
    )
    await writer.drain()
    status = (await reader.readline()).split()[1]
    writer.close()
    return int(status)


ESCAPES = [
    ("PUT", "/%2E%2E/x", "other.example"),  # the shape that removed a file beside s3/
    ("DELETE", "/%2E%2E", "other.example"),
    ("PUT", "/%2E%2E/x", "127.0.0.1"),
    ("PUT", "/../x", "127.0.0.1"),
    ("DELETE", "/..", "127.0.0.1"),
    ("PUT", "/travis-logs/../../beside", "127.0.0.1"),
    ("PUT", "/travis-logs/%2E%2E/%2E%2E/beside", "127.0.0.1"),
    ("PUT", "/travis-logs//etc/beside", "127.0.0.1"),
    ("PUT", "/travis-logs/%2Fetc%2Fbeside", "127.0.0.1"),
    ("PUT", "/travis-logs/..%5C..%5Cbeside", "127.0.0.1"),
    ("PUT", "/travis-logs/a\\..\\..\\beside", "127.0.0.1"),
    ("PUT", "/x", "travis-logs.localhost"),
    ("DELETE", "/beside", "travis-logs.127.0.0.1.nip.io"),
    ("PUT", "/%2Fetc/x", "127.0.0.1"),
]


@pytest.mark.services  # starts the embedded S3 server
async def test_requests_naming_files_outside_the_folder_are_refused(tmp_path: Path) -> None:
    data = tmp_path / ".data"
    (data / "s3").mkdir(parents=True)
    beside = data / "beside"
    beside.write_text("keep me")
    port = free_port()
    async with s3_server(data / "s3", port) as store:
        s3 = store().client
        await s3.create_bucket(Bucket="travis-logs")
        await s3.put_object(Bucket="travis-logs", Key="kept", Body=b"kept")
        statuses = [await _raw(port, *shape) for shape in ESCAPES]
        # The next good request is served as before.
        await s3.put_object(Bucket="travis-logs", Key="after", Body=b"after")
        got = await s3.get_object(Bucket="travis-logs", Key="kept")
        assert await got["Body"].read() == b"kept"
    assert statuses == [400] * len(ESCAPES)
    assert beside.read_text() == "keep me"
    assert _names(data) == ["beside", "s3"]
    assert _names(data / "s3") == ["travis-logs"]
    assert _names(tmp_path) == [".data"]


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.mark.parametrize(
    ("path", "host", "refused"),
    [
        ("/travis-logs/jobs/1/log.txt", "127.0.0.1:9000", False),
        ("/travis-logs/a..b/c.d", "localhost:9000", False),
        ("/", "[::1]:9000", False),
        ("/moto-api/reset", "127.0.0.1", False),
        ("/travis-logs/jobs/./1", "127.0.0.1", True),
        ("/travis-logs/jobs/..", "127.0.0.1", True),
        ("/Travis_Logs/x", "127.0.0.1", True),
        ("/travis-logs/x", "s3.amazonaws.com", True),
    ],
)
def test_refusal_rules(path: str, host: str, refused: bool) -> None:
    assert (refusal({"PATH_INFO": path, "HTTP_HOST": host}) is not None) is refused


def test_folder_refuses_names_outside_it(tmp_path: Path) -> None:
    folder = ObjectFolder(tmp_path / "s3")
    for bucket in ("..", ".", "a/../..", "/etc", "..\\x", ""):
        with pytest.raises(OutsideFolder):
            folder.remove_bucket(bucket)
    assert os.listdir(tmp_path) == []
