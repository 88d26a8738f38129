"""One input contract: AMQP messages and HTTP parts accept and reject the same shapes.

Each case is a travis-worker payload; it goes through the AMQP parser (`parse_message`) and,
renamed to the HTTP fields, through `PUT /log-parts/:job_id/:number` and the item schema of
`POST /log-parts/multi`. Both must agree on accept or reject, and on the stored part.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from api.routes.log_parts import PartRefused, _to_part
from api.schemas import LogPartItem
from travis_logs.errors import InvalidLogPart
from travis_logs.parts import LAST_PART_NUMBER, parse_message
from travis_logs.settings import Settings

B64 = base64.b64encode(b"hi\n").decode()
ACCEPTED = [
    pytest.param({"number": 1, "log": "hi\n"}, (1, "hi\n", False), id="plain"),
    pytest.param({"number": "2", "log": "hi\n"}, (2, "hi\n", False), id="digit-string number"),
    pytest.param({"number": 3, "log": B64, "encoding": "base64"}, (3, "hi\n", False), id="b64"),
    pytest.param({"number": "last", "final": True}, (LAST_PART_NUMBER, "", True), id="last"),
    pytest.param({"number": 4, "log": "x", "final": None}, (4, "x", False), id="final null"),
]
REJECTED = [
    pytest.param({"number": 1, "log": "x", "final": "true"}, id="final string"),
    pytest.param({"number": 1, "log": "x", "final": 1}, id="final 1"),
    pytest.param({"number": 1, "log": "x", "encoding": "gzip"}, id="unknown encoding"),
    pytest.param({"number": 1.5, "log": "x"}, id="float number"),
    pytest.param({"number": -1, "log": "x"}, id="negative number"),
    pytest.param({"number": "1e3", "log": "x"}, id="number not digits"),
    pytest.param({"number": True, "log": "x"}, id="number bool"),
    pytest.param({"number": 1, "log": 5}, id="log not text"),
    pytest.param({"number": 1, "log": "!!", "encoding": "base64"}, id="bad base64"),
]


def amqp(job_id: object, fields: dict[str, Any]) -> bytes:
    return json.dumps({"id": job_id, **fields}).encode()


def http(job_id: object, fields: dict[str, Any]) -> dict[str, Any]:
    """The same payload in the HTTP names: job_id, content; @type and tok added."""
    renamed = {"content" if k == "log" else k: v for k, v in fields.items()}
    return {"@type": "log_part", "job_id": job_id, "tok": "", **renamed}


def http_accepts(job_id: object, fields: dict[str, Any]) -> bool:
    """Whether POST /log-parts/multi would store the item (its JWT aside)."""
    try:
        item = LogPartItem.model_validate(http(job_id, fields))
    except ValidationError:
        return False
    try:
        _to_part(Settings(), item.job_id, item.number, item)
    except PartRefused:
        return False
    return True


@pytest.mark.parametrize(("fields", "stored"), ACCEPTED)
@pytest.mark.parametrize("job", [7, "7"], ids=["int id", "digit-string id"])
def test_both_edges_accept_the_same_parts(
    fields: dict[str, Any], stored: tuple[int, str, bool], job: object
) -> None:
    """Each accepted shape gives the same part from AMQP and is accepted over HTTP."""
    part = parse_message(amqp(job, fields), 1 << 20)
    assert (part.job_id, part.number, part.content, part.final) == (7, *stored)
    assert http_accepts(job, fields)


@pytest.mark.parametrize("fields", REJECTED)
def test_both_edges_reject_the_same_parts(fields: dict[str, Any]) -> None:
    """Each refused shape is dead-lettered from AMQP and refused over HTTP."""
    with pytest.raises(InvalidLogPart):
        parse_message(amqp(7, fields), 1 << 20)
    assert not http_accepts(7, fields)


@pytest.mark.parametrize("job", ["7a", True, 0, 1.0, "", 2**63])
def test_both_edges_reject_the_same_job_ids(job: object) -> None:
    """Ids that are not 1..2^63-1 as an integer or digits are refused by both."""
    with pytest.raises(InvalidLogPart):
        parse_message(amqp(job, {"number": 1}), 1 << 20)
    assert not http_accepts(job, {"number": 1})


async def test_put_part_follows_the_contract(client: httpx.AsyncClient, job_id: int) -> None:
    """Over the wire: plain text and digit strings are stored; "true" and gzip are 400."""
    good = await client.put(f"/log-parts/{job_id}/5", json={"@type": "log_part", "content": "a"})
    assert good.status_code == 204, good.text
    for bad in ({"final": "true"}, {"encoding": "gzip"}, {"content": 3}):
        response = await client.put(
            f"/log-parts/{job_id}/6", json={"@type": "log_part", "content": "b", **bad}
        )
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["message"]
    parts = (await client.get(f"/log-parts/{job_id}")).json()["log_parts"]
    assert [(p["number"], p["content"]) for p in parts] == [(5, "a")]
