"""Service routes: uptime, health of each backing service, metrics, docs and error shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tests.api.conftest import running_api
from tests.helpers import free_port
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


async def test_openapi_and_docs_are_served(anonymous: httpx.AsyncClient) -> None:
    """/docs renders Swagger UI and /openapi.json lists the travis-logs routes."""
    docs = await anonymous.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    paths = (await anonymous.get("/openapi.json")).json()["paths"]
    for path in ("/logs/{job_id}", "/logs/{id}", "/log-parts/{job_id}", "/pusher/existence"):
        assert path in paths


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

    response = await anonymous.post("/pusher/existence", content=chunks())
    assert response.status_code == 413
    assert "message" in response.json()
