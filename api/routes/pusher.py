"""Pusher's side of the API: channel-existence webhooks and private-channel authorisation.

`POST /pusher/auth` signs a subscription to `private-job-<id>` only for the holder of a valid
viewer grant for that job, issued while channels are private (`api.sessions`); a page whose
grant expired is reloaded for a new one.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from api import sessions
from api.auth import same
from api.deps import GrantDep, OccupancyDep, SettingsDep
from api.errors import ApiError
from api.limits import FORM_MAX_BYTES, parse_form, read_bounded
from api.schemas import ChannelAuth, Message
from travis_logs.bounded import bounded
from travis_logs.parts import MAX_JOB_ID
from travis_logs.pusher.publisher import authenticate_channel, validate_webhook

router = APIRouter(tags=["pusher"])

# Every bigint job id (up to 2^63-1, 19 digits); the value is range-checked after the match.
_PRIVATE_JOB_CHANNEL = re.compile(r"private-job-([1-9][0-9]{0,18})")
FORM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "socket_id": {"type": "string"},
                        "channel_name": {"type": "string"},
                    },
                    "required": ["socket_id", "channel_name"],
                }
            }
        },
    }
}


@router.post(
    "/pusher/existence",
    status_code=204,
    responses={401: {"model": Message, "description": "wrong key or signature"}},
)
async def existence(
    request: Request,
    settings: SettingsDep,
    occupancy: OccupancyDep,
    x_pusher_key: Annotated[str | None, Header()] = None,
    x_pusher_signature: Annotated[str | None, Header()] = None,
) -> Response:
    """Pusher's channel_occupied / channel_vacated webhook (HMAC-SHA256 signed)."""
    if not x_pusher_key or not same(x_pusher_key, settings.pusher_key or ""):
        raise ApiError(401, "invalid webhook key or signature")  # before the body is read
    events = validate_webhook(settings, x_pusher_key, x_pusher_signature, await request.body())
    if events is None:
        raise ApiError(401, "invalid webhook key or signature")
    await occupancy.apply(events)
    return Response(status_code=204)


def _private_job(channel: str) -> int:
    match = _PRIVATE_JOB_CHANNEL.fullmatch(channel)
    if match is None or int(match.group(1)) > MAX_JOB_ID:
        raise ApiError(403, "only private-job-<id> channels are authorised here")
    return int(match.group(1))


def _form_field(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name, [])
    if len(values) != 1 or not values[0]:
        raise ApiError(400, f"{name} is required once")
    return values[0]


@router.post(
    "/pusher/auth",
    response_model=ChannelAuth,
    response_model_exclude_none=True,
    openapi_extra=FORM_BODY,
    responses={
        400: {"model": Message, "description": "missing socket_id or channel_name"},
        403: {"model": Message, "description": "not a job channel, or no right to read it"},
    },
)
async def authorize_channel(
    request: Request, settings: SettingsDep, grant: GrantDep
) -> ChannelAuth:
    """Sign a pusher-js subscription to `private-job-<id>` (form: socket_id, channel_name)."""
    # The grant is verified before the body is read; which job it opens, after.
    granted = sessions.granted_job(settings, sessions.GRANT, grant)
    if granted is None:
        raise ApiError(403, "a valid viewer grant (X-Log-Grant) is required")
    form = parse_form(await read_bounded(request, FORM_MAX_BYTES))
    socket_id, channel = _form_field(form, "socket_id"), _form_field(form, "channel_name")
    if str(_private_job(channel)) != granted:
        raise ApiError(403, "no valid viewer grant for this job's private channel")
    try:
        signed = authenticate_channel(settings, channel, socket_id)
    except ValueError as err:
        raise ApiError(400, f"invalid socket_id: {bounded(err)}") from None
    return ChannelAuth.model_validate(signed)
