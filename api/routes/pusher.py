"""Pusher's side of the API: channel-existence webhooks and private-channel authorisation.

`POST /pusher/auth` signs a subscription to `private-job-<id>` for a caller who may read that
job's log: travis-api's token (a front end that checked the user's access to the repository,
as travis-api does for travis-web), or the viewer page's grant for that one job.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, Request, Response

from api.auth import require_reader
from api.deps import AuthorizationDep, GrantDep, OccupancyDep, SettingsDep
from api.errors import ApiError
from api.schemas import ChannelAuth, Message
from travis_logs.pusher.publisher import authenticate_channel, validate_webhook

router = APIRouter(tags=["pusher"])

_PRIVATE_JOB_CHANNEL = re.compile(r"private-job-([1-9][0-9]{0,17})")
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
    events = validate_webhook(settings, x_pusher_key, x_pusher_signature, await request.body())
    if events is None:
        raise ApiError(401, "invalid webhook key or signature")
    await occupancy.apply(events)
    return Response(status_code=204)


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
    request: Request, settings: SettingsDep, authorization: AuthorizationDep, grant: GrantDep
) -> ChannelAuth:
    """Sign a pusher-js subscription to `private-job-<id>` (form: socket_id, channel_name)."""
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    socket_id, channel = _form_field(form, "socket_id"), _form_field(form, "channel_name")
    match = _PRIVATE_JOB_CHANNEL.fullmatch(channel)
    if match is None:
        raise ApiError(403, "only private-job-<id> channels are authorised here")
    require_reader(settings, authorization, grant, int(match.group(1)))
    try:
        signed = authenticate_channel(settings, channel, socket_id)
    except ValueError as err:
        raise ApiError(400, f"invalid socket_id: {err}") from None
    return ChannelAuth.model_validate(signed)
