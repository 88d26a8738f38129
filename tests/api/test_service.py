"""Service routes: uptime, health of each backing service, metrics, docs and error shapes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from tests.api.conftest import running_api
from tests.helpers import free_port
from tests.pusher_support import APP
from travis_logs.settings import Settings


async def test_uptime_answers_like_travis_logs(anonymous: httpx.AsyncClient) -> None:
    """GET /uptime needs no token and reports uptime, the database clock and a version."""
    response = await anonymous.get("/uptime")
    assert response.status_code == 200
    body = response.json()
    assert body["greeting"] == "hello, human 👋!"
    assert body["pong"] == "PONG"
    assert 0 <= body["uptime"] < 3600
    assert abs(datetime.fromisoformat(body["now"]) - datetime.now(UTC)).total_seconds() < 60
    assert body["version"]


async def test_healthz_reports_each_service(anonymous: httpx.AsyncClient) -> None:
    """GET /healthz checks PostgreSQL, RabbitMQ, Temporal and S3 and says each is fine."""
    response = await anonymous.get("/healthz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"postgresql", "rabbitmq", "temporal", "s3"}
    assert all(check["ok"] and check["error"] is None for check in body["checks"].values())


async def test_healthz_names_the_service_that_is_down(api_settings: Settings) -> None:
    """With RabbitMQ and the bucket unreachable, /healthz is 503 and names exactly those two."""
    broken = api_settings.model_copy(
        update={
            "rabbitmq_url": f"amqp://guest:secret-pw@127.0.0.1:{free_port()}/",
            "s3_bucket": "no-such-bucket-here",
        }
    )
    async with running_api(broken) as url, httpx.AsyncClient(base_url=url) as c:
        response = await c.get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert {name for name, check in checks.items() if not check["ok"]} == {"rabbitmq", "s3"}
    assert "secret-pw" not in response.text
    assert checks["rabbitmq"]["error"]


async def test_metrics_count_requests_by_route_template(anonymous: httpx.AsyncClient) -> None:
    """/metrics is Prometheus text with request timings labelled by route, not by raw path."""
    await anonymous.get("/uptime")
    await anonymous.get("/logs/123456789")
    text = (await anonymous.get("/metrics")).text
    assert (
        'travis_logs_api_request_seconds_count{method="GET",route="/uptime",status="200"}' in text
    )
    assert 'route="/logs/{id}",status="403"' in text
    assert "/logs/123456789" not in text


async def test_docs_are_served_from_local_files(anonymous: httpx.AsyncClient) -> None:
    """/docs is Swagger UI whose script and styles come from this server, not a CDN."""
    docs = await anonymous.get("/docs")
    assert docs.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert not re.findall(r"""(?:src|href)=["']https?://""", docs.text)
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = await anonymous.get(f"/docs/assets/{asset}")
        assert response.status_code == 200 and len(response.content) > 10_000, asset


SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "replace_log": [{"token": []}],
    "get_log": [{"token": []}],
    "get_parts": [{"token": []}, {"grant": []}],
    "put_part": [{"token": []}, {"jwt": []}],
    "post_parts": [{"token": []}, {"jwt": []}],
    "authorize_channel": [{"grant": []}],
}


async def test_openapi_tells_how_the_api_answers(anonymous: httpx.AsyncClient) -> None:
    """Auth schemes per route, readable unique operation ids, 400 {message} and never 422."""
    document = (await anonymous.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["token"] == {**schemes["token"], "type": "apiKey", "name": "Authorization"}
    assert (schemes["jwt"]["scheme"], schemes["jwt"]["bearerFormat"]) == ("bearer", "JWT")
    assert schemes["grant"]["name"] == "X-Log-Grant"
    operations = {
        op["operationId"]: op for path in document["paths"].values() for op in path.values()
    }
    assert len(operations) == sum(len(path) for path in document["paths"].values())
    assert all(re.fullmatch(r"[a-z_]+", name) for name in operations), sorted(operations)
    for name, security in SECURITY.items():
        assert operations[name]["security"] == security, name
    message = {"$ref": "#/components/schemas/Message"}
    for name, op in operations.items():
        assert "422" not in op["responses"], name
        if "400" in op["responses"]:
            assert op["responses"]["400"]["content"]["application/json"]["schema"] == message
    assert {"replace_log", "get_parts", "put_part", "post_parts", "replace_logs"} <= {
        name for name, op in operations.items() if "400" in op["responses"]
    }
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path in ("/logs/{job_id}", "/logs/{id}", "/log-parts/{job_id}", "/pusher/existence"):
        assert path in document["paths"]


async def test_unknown_route_is_a_json_404(anonymous: httpx.AsyncClient) -> None:
    """An unknown path answers 404 with a JSON message."""
    response = await anonymous.get("/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


async def test_wrong_method_is_a_json_405(anonymous: httpx.AsyncClient) -> None:
    """A known path with a method it does not take answers 405 with a JSON message."""
    response = await anonymous.delete("/uptime")
    assert response.status_code == 405
    assert "message" in response.json()


async def test_oversized_body_is_413_before_auth_or_parsing(anonymous: httpx.AsyncClient) -> None:
    """A body above API_MAX_BODY_BYTES is refused with 413 and a JSON message."""
    response = await anonymous.post("/logs/multi", content=b"[" + b" " * (300 * 1024) + b"]")
    assert response.status_code == 413
    assert "message" in response.json()


async def test_oversized_chunked_body_is_413(anonymous: httpx.AsyncClient) -> None:
    """A streamed body without Content-Length is cut off at the limit with 413 too."""

    async def chunks():
        for _ in range(40):
            yield b"x" * 8192

    # Pusher's key is checked before the body is read: with it, the body is read and cut off.
    headers = {"X-Pusher-Key": APP.key, "X-Pusher-Signature": "0" * 64}
    response = await anonymous.post("/pusher/existence", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert "message" in response.json()
