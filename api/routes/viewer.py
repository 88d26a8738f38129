"""GET /jobs/:job_id: a page that shows a job's log and follows it live.

Access follows what travis-web does. With public channels (PUSHER_PRIVATE_CHANNELS=false,
an open-source deployment) the page is public like a public repository's log: anyone can
subscribe to `job-<id>` anyway. With private channels the page needs travis-api's token,
either as `Authorization: token ...` (a proxy in front of it) or once, as `?token=...` or
posted to `/jobs/<id>/session` as a form field `token`, which sets a session cookie for this one job (`api.sessions`) and redirects to the clean URL; the
access log never shows query strings (`api.access_log`). Either way the page embeds a grant for
its one job, which it sends as `X-Log-Grant` to `GET /log-parts/:id` (gap filling),
`POST /pusher/auth` (the private channel) and, for a finished log over VIEWER_INLINE_BYTES
that the page reads by range, `GET /logs/:id/index` and `GET /logs/:id/text`; the grant
reads nothing else.

The page runs no inline script (its state is a JSON data block), so its Content-Security-Policy
allows scripts from this origin only, and connections to this origin and the Pusher server.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api import sessions
from api.auth import configured_token, require_token, same
from api.deps import ArchiveDep, AuthorizationDep, JobId, PoolDep, SettingsDep
from api.errors import ApiError
from api.limits import FORM_MAX_BYTES, parse_form, read_bounded
from api.reading import ViewerLog, viewer_log
from api.sessions import GRANT, SESSION, VIEWER_COOKIE
from travis_logs.pusher.publisher import channel_name
from travis_logs.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

PUSHER_JS = Path("node_modules", "pusher-js", "dist", "web")


@cache
def _template() -> Template:
    page = resources.files("api").joinpath("templates", "viewer.html")
    return Template(page.read_text(encoding="utf-8"))


def pusher_options(settings: Settings, job_id: int) -> dict[str, Any]:
    """What pusher-js needs: the key, where browsers reach the server, and the job's channel.

    Browsers may reach Pusher by another name than the processes do (in compose: `soketi`
    for the API and ingest, `localhost` for a browser); PUSHER_CLIENT_* say so.
    """
    host = settings.pusher_client_host or settings.pusher_host
    port = settings.pusher_client_port or settings.pusher_port
    ssl = (
        settings.pusher_client_ssl
        if settings.pusher_client_ssl is not None
        else settings.pusher_ssl
    )
    return {
        "key": settings.pusher_key,
        "cluster": settings.pusher_cluster or "mt1",
        "wsHost": host,
        "wsPort": port,
        "forceTLS": ssl if ssl is not None else host is None,
        "channel": channel_name(job_id, settings.pusher_private_channels),
        "authEndpoint": "/pusher/auth",
    }


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no `</script>` or `<!--` can end it early)."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(settings: Settings, view: ViewerLog) -> str:
    state = asdict(view) | {
        "grant": sessions.issue(settings, GRANT, view.job_id),
        "pusher": pusher_options(settings, view.job_id),
    }
    return _template().substitute(job_id=view.job_id, state=_script_json(state))


def _pusher_sources(options: dict[str, Any]) -> str:
    """Where pusher-js connects: the configured host, or Pusher Channels' cluster hosts."""
    host = options["wsHost"]
    if host:
        where = f"{host}:{options['wsPort']}" if options["wsPort"] else host
        return f"ws://{where} wss://{where}"
    cluster = options["cluster"]
    return f"wss://ws-{cluster}.pusher.com https://sockjs-{cluster}.pusher.com"


def page_headers(settings: Settings, job_id: int) -> dict[str, str]:
    """No caching, no framing, no inline script, no sniffing, no referrer."""
    connect = _pusher_sources(pusher_options(settings, job_id))
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {connect}; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def _require_viewer(
    settings: Settings, job_id: int, authorization: str | None, cookie: str | None
) -> None:
    sessions.require_secret(settings)  # the page carries a grant: 500 naming the setting
    if not settings.pusher_private_channels:
        return
    if sessions.valid(settings, SESSION, job_id, cookie):
        return
    require_token(settings, authorization)


def _sign_in(settings: Settings, job_id: int, token: str) -> Response:
    if not same(token, configured_token(settings)):
        raise ApiError(403, "wrong token")
    page = RedirectResponse(
        f"/jobs/{job_id}", status_code=303, headers={"Cache-Control": "no-store"}
    )
    page.set_cookie(
        VIEWER_COOKIE,
        sessions.issue(settings, SESSION, job_id),
        max_age=sessions.ttl(settings, SESSION),
        path=f"/jobs/{job_id}",  # the cookie opens this job's page and no other
        secure=settings.viewer_cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return page


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def viewer_page(
    job_id: JobId,
    request: Request,
    settings: SettingsDep,
    pool: PoolDep,
    archive: ArchiveDep,
    authorization: AuthorizationDep,
    token: Annotated[str | None, Query()] = None,
) -> Response:
    """The log viewer: ANSI colours, folds, line anchors, live parts."""
    if token is not None:
        return _sign_in(settings, job_id, token)
    _require_viewer(settings, job_id, authorization, request.cookies.get(VIEWER_COOKIE))
    view = await viewer_log(pool, archive, job_id, settings.viewer_inline_bytes)
    return HTMLResponse(render(settings, view), headers=page_headers(settings, job_id))


@router.post("/jobs/{job_id}/session")
async def sign_in(job_id: JobId, request: Request, settings: SettingsDep) -> Response:
    """The form way to sign in (`token=...` in the body): the token never enters a URL."""
    configured_token(settings)  # 500 when unset, before the body is read
    form = parse_form(await read_bounded(request, FORM_MAX_BYTES))
    tokens = form.get("token", [])
    if len(tokens) != 1:
        raise ApiError(400, "token is required once")
    return _sign_in(settings, job_id, tokens[0])


def _pusher_js_dir() -> Path | None:
    # npm installs next to package.json: the working directory or the source checkout.
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / PUSHER_JS / "pusher.min.js").is_file():
            return root / PUSHER_JS
    return None


def mount_assets(app: FastAPI) -> None:
    """The viewer's script and styles, and pusher-js from node_modules (not vendored)."""
    found = _pusher_js_dir()
    if found is None:
        log.warning("pusher-js is not installed (run `npm install`): the viewer will poll")
    else:
        app.mount("/assets/pusher-js", StaticFiles(directory=found), name="pusher-js")
    app.mount("/assets", StaticFiles(packages=[("api", "static")]), name="assets")
