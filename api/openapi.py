"""The OpenAPI document as the API really answers, and /docs served without a CDN.

FastAPI documents a 422 for every route with parameters, but this API answers bad input
with 400 `{"message": ...}` (travis-logs' sinatra-param did), so the 422s and their schemas
are replaced by that 400. Swagger UI's files come from the `swagger-ui-bundle-v2` package,
so /docs works on a machine without internet access.
"""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

DOCS = "/docs"
ASSETS = "/docs/assets"
BAD_REQUEST = {
    "description": "malformed id, parameter or body",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
}


def operation_id(route: APIRoute) -> str:
    """`replace_log`, `get_parts`: the route function's name, unique across the API."""
    return route.name


def install(app: FastAPI) -> None:
    """Serve /docs from local files and the corrected document at /openapi.json."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path)), name="docs")

    @app.get(DOCS, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            app.openapi_schema = without_422(document)
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]


def without_422(document: dict[str, Any]) -> dict[str, Any]:
    """No 422 (never sent); a 400 where a path, query or body can be malformed."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None and _can_be_malformed(operation):
                responses.setdefault("400", BAD_REQUEST)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def _can_be_malformed(operation: dict[str, Any]) -> bool:
    # Header parameters here are optional strings and never fail validation.
    parameters = operation.get("parameters", [])
    return "requestBody" in operation or any(p["in"] in ("path", "query") for p in parameters)
