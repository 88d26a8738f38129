"""GET /jobs/:job_id: a page that shows a job's log and follows it live.

Access follows what travis-web does. With public channels (PUSHER_PRIVATE_CHANNELS=false,
an open-source deployment) the page is public like a public repository's log: anyone can
subscribe to `job-<id>` anyway. With private channels the page needs travis-api's token,
either as `Authorization: token ...` (a proxy in front of it) or once as `?token=...`, which
sets an HttpOnly cookie derived from the token and redirects to the clean URL. Either way the
page embeds a grant for its one job, which it sends as `X-Log-Grant` to `GET /log-parts/:id`
(gap filling) and `POST /pusher/auth` (the private channel); the grant reads nothing else.
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

from api.auth import (
    VIEWER_COOKIE,
    configured_token,
    job_grant,
    require_token,
    same,
    viewer_session,
)
from api.deps import ArchiveDep, AuthorizationDep, JobId, PoolDep, SettingsDep
from api.errors import ApiError
from api.reading import ViewerLog, viewer_log
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
        "grant": job_grant(settings, view.job_id),
        "pusher": pusher_options(settings, view.job_id),
    }
    return _template().substitute(job_id=view.job_id, state=_script_json(state))


def _require_viewer(settings: Settings, authorization: str | None, cookie: str | None) -> None:
    configured_token(settings)  # grants are derived from it: 500 when it is unset
    if not settings.pusher_private_channels:
        return
    if cookie is not None and same(cookie, viewer_session(settings)):
        return
    require_token(settings, authorization)


def _sign_in(settings: Settings, job_id: int, token: str) -> Response:
    if not same(token, configured_token(settings)):
        raise ApiError(403, "wrong token")
    page = RedirectResponse(f"/jobs/{job_id}", status_code=303)
    page.set_cookie(VIEWER_COOKIE, viewer_session(settings), httponly=True, samesite="strict")
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
    _require_viewer(settings, authorization, request.cookies.get(VIEWER_COOKIE))
    view = await viewer_log(pool, archive, job_id)
    return HTMLResponse(render(settings, view), headers={"Cache-Control": "no-store"})


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
