"""Request and response bodies of the HTTP API (pydantic lives at this edge only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from travis_logs import parts
from travis_logs.errors import InvalidLogPart
from travis_logs.parts import MAX_JOB_ID


def _contract(rule: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A `travis_logs.parts` field rule as a pydantic validator (the AMQP and HTTP contract)."""

    def validate(value: Any) -> Any:
        try:
            return rule(value)
        except InvalidLogPart as err:
            raise ValueError(err.reason.partition(": ")[2]) from None

    return validate


JobIdField = Annotated[
    int,
    BeforeValidator(_contract(parts.job_id)),
    Field(description="a job id: an integer or a string of digits"),
]
UserId = Annotated[int, Field(ge=1, le=MAX_JOB_ID)]
PartNumber = Annotated[
    int,
    BeforeValidator(_contract(parts.part_number)),
    Field(description='a part number (integer or digits), or "last" for after every other part'),
]
FinalFlag = Annotated[
    bool, BeforeValidator(_contract(parts.final_flag)), Field(description="a JSON boolean")
]
Content = Annotated[
    str,
    BeforeValidator(_contract(parts.log_text)),
    Field(description="the part's text; base64 when `encoding` is base64"),
]
Encoding = Annotated[
    Literal["base64"] | None,
    BeforeValidator(_contract(parts.encoding_of)),
    Field(description='absent (plain text) or "base64"'),
]


class _Typed(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class _LogFields(_Typed):
    id: int
    job_id: int
    content: str | None
    created_at: datetime | None
    updated_at: datetime | None
    aggregated_at: datetime | None
    archived_at: datetime | None
    purged_at: datetime | None
    removed_at: datetime | None
    archiving: bool | None
    archive_verified: bool | None
    type_: Literal["log"] = Field(default="log", alias="@type")


class LogRecord(_LogFields):
    """The row as `PUT /logs/:job_id` returns it: raw `removed_by` key, as in travis-logs."""

    removed_by: int | None


class Timeline(BaseModel):
    """When each step of the log's lifecycle last happened (UTC); null: not (yet)."""

    first_part: datetime | None = None
    final_part: datetime | None = None
    aggregated: datetime | None = None
    archived: datetime | None = None
    verified: datetime | None = None
    purged: datetime | None = None
    replaced: datetime | None = None
    redacted: datetime | None = None  # the last redaction that masked something


class RedactionOut(BaseModel):
    """An applied redaction (the audit row): who, when, why, how many; never the secret."""

    id: int
    requested_by: str
    reason: str
    requested_at: datetime
    applied_at: datetime | None
    occurrences: int | None
    string_sha256: list[str]
    ranges: list[list[int]]
    content_version: int | None = Field(description="the version it wrote; null: no change")


class Truncated(BaseModel):
    """What a log past LOGS_MAX_BYTES left out between its head and its tail."""

    elided_bytes: int = Field(description="bytes of the parts left out")
    elided_parts: int = Field(description="parts left out")


class LogOut(_LogFields):
    """A log as `GET /logs/:id` returns it: `removed_by_id`, content aggregated or archived.

    `complete`, `missing_parts`, `timeline`, `redactions` and `truncated` are not
    travis-api's: it ignores them.
    """

    removed_by_id: int | None
    complete: bool = Field(
        default=True, description="every part from 0 to the final one is in the log"
    )
    missing_parts: list[list[int]] = Field(
        default_factory=list, description="missing part numbers, as [first, last] ranges"
    )
    timeline: Timeline = Field(default_factory=Timeline)
    redactions: list[RedactionOut] = Field(default_factory=list)
    truncated: Truncated | None = Field(
        default=None,
        description="past LOGS_MAX_BYTES: what was left out (a marker line stands there); "
        "null: the log is whole",
    )


BIGINT_MAX = 2**63 - 1
SecretText = Annotated[str, Field(min_length=1, max_length=10_000)]
ByteRange = Annotated[
    # Bounded like the database's bigint: a larger offset is a 400, not a failed query.
    tuple[Annotated[int, Field(ge=0, le=BIGINT_MAX)], Annotated[int, Field(ge=1, le=BIGINT_MAX)]],
    Field(description="[start, end): byte offsets into the log, on UTF-8 character boundaries"),
]


class RedactionIn(BaseModel):
    """`POST /logs/:job_id/redactions`: what to mask, why, and who asked."""

    model_config = ConfigDict(extra="forbid")

    strings: list[SecretText] = Field(default_factory=list, max_length=100)
    ranges: list[ByteRange] = Field(default_factory=list, max_length=1000)
    reason: str = Field(min_length=1, max_length=500)
    requested_by: str = Field(min_length=1, max_length=200)


class RedactionResultOut(BaseModel):
    """The applied redaction; `changed` false: nothing was left to mask (no new version)."""

    redaction_id: int
    occurrences: int
    changed: bool
    content_version: int
    archived: bool = Field(description="the redacted version is archived and verified")


class LogId(_Typed):
    id: int
    type_: Literal["log"] = Field(default="log", alias="@type")


class LogPartOut(BaseModel):
    """A stored part; the pseudo-parts ("log aggregated") carry number, log_id and content."""

    id: int | None = None
    number: int
    content: str | None = None
    final: bool | None = None
    log_id: int | None = None


class LogParts(_Typed):
    type_: Literal["log_parts"] = Field(default="log_parts", alias="@type")
    log_parts: list[LogPartOut]
    job_id: int


class LogPartIn(_Typed):
    """The body of `PUT /log-parts/:job_id/:number`; fields follow the AMQP contract."""

    type_: Literal["log_part"] = Field(alias="@type")
    content: Content = ""
    encoding: Encoding = None
    final: FinalFlag = False


class LogPartItem(LogPartIn):
    """One item of `POST /log-parts/multi`, authorised by its own JWT in `tok`."""

    job_id: JobIdField
    number: PartNumber
    tok: str = ""


class LogItem(BaseModel):
    """One item of `POST /logs/multi`."""

    job_id: JobIdField
    content: str | None = ""
    removed_by: UserId | None = None


class Uptime(BaseModel):
    uptime: float = Field(description="seconds since this process started")
    greeting: str
    pong: str
    now: datetime = Field(description="the database's clock")
    version: str


class ServiceCheck(BaseModel):
    ok: bool
    ms: float
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "failing"]
    checks: dict[str, ServiceCheck]


class Message(BaseModel):
    """The body of every error answer."""

    message: str


class ChannelAuth(BaseModel):
    auth: str
    channel_data: str | None = None
