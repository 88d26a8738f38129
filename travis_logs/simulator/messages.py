"""The messages a simulated worker sends: log parts, and poison that no consumer may store."""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from typing import Any

from travis_logs.simulator.cutter import Part


@dataclass(frozen=True)
class PartMessage:
    """A log part on the wire; `meta` only on a job's first part, as later workers send it."""

    job_id: int
    part: Part
    uuid: str
    meta: dict[str, Any] | None = None

    @property
    def is_utf8(self) -> bool:
        try:
            self.part.data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    def amqp_body(self) -> bytes:
        """travis-worker's JSON (`id, log, number, uuid, final`), base64 when not UTF-8."""
        body: dict[str, Any] = {"id": self.job_id, "log": "", "number": self.part.number}
        if self.is_utf8:
            body["log"] = self.part.data.decode("utf-8")
        else:
            # JSON cannot carry these bytes as text; the consumer decodes and cleans them.
            body["log"] = base64.b64encode(self.part.data).decode("ascii")
            body["encoding"] = "base64"
        body["uuid"] = self.uuid
        body["final"] = self.part.final
        if self.meta is not None:
            body["meta"] = self.meta
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def http_item(self) -> dict[str, Any]:
        """An item of `POST /log-parts/multi` without its token: content is always base64."""
        return {
            "@type": "log_part",
            "encoding": "base64",
            "job_id": self.job_id,
            "number": self.part.number,
            "content": base64.b64encode(self.part.data).decode("ascii"),
            "final": self.part.final,
        }


@dataclass(frozen=True)
class PoisonMessage:
    """A message that is not a valid log part; `reason` says why (for the report)."""

    job_id: int
    reason: str
    body: bytes


def poison_messages(
    job_id: int, numbers: list[int], rng: random.Random, count: int
) -> list[PoisonMessage]:
    """`count` poison messages aimed at this job, each kind in turn; none may change its log."""
    kinds = [POISON_KINDS[i % len(POISON_KINDS)] for i in range(count)]
    rng.shuffle(kinds)
    return [_poison(job_id, kind, rng.choice(numbers)) for kind in kinds]


POISON_KINDS = (
    "truncated JSON",
    "JSON array, not an object",
    "bytes that are not JSON",
    "non-integer id",
    "no number",
    "invalid base64",
)


def _poison(job_id: int, kind: str, number: int) -> PoisonMessage:
    bodies: dict[str, bytes | dict[str, Any]] = {
        "truncated JSON": b'{"id": %d, "log": "trunc' % job_id,
        "JSON array, not an object": b"[]",
        "bytes that are not JSON": b"\xff\xfe not json \x00",
        "non-integer id": {"id": f"job-{job_id}", "log": "x", "number": number, "final": False},
        "no number": {"id": job_id, "log": "x", "final": False},
        # Aimed at a real part number: a consumer that decoded it leniently would take the
        # slot of the real part, and the real part would be dropped as a duplicate.
        "invalid base64": {
            "id": job_id,
            "log": "%%not base64%%",
            "encoding": "base64",
            "number": number,
            "final": False,
        },
    }
    body = bodies[kind]
    return PoisonMessage(
        job_id, kind, body if isinstance(body, bytes) else json.dumps(body).encode()
    )


Message = PartMessage | PoisonMessage
