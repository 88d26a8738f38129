"""The namespace's custom search attributes: checked at start, added where the caller may.

A namespace that lacks one of the attributes a workflow sets accepts the worker, and then
fails the workflow task of every run that sets it (BadSearchAttributes), retried forever;
so a process that starts or runs workflows checks them first and refuses to start with one
sentence naming each missing attribute and the command that adds it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from travis_logs.errors import ConfigError

log = logging.getLogger(__name__)

# What the server calls each type, as `temporal operator search-attribute create --type` takes it.
_TYPE_NAMES = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}
# A caller that may not list or add attributes (Temporal Cloud, a restricted role).
_NOT_ALLOWED = {RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED}


@dataclass(frozen=True)
class Mismatch:
    """An attribute the namespace lacks (`found` None) or holds with another type."""

    key: SearchAttributeKey[Any]
    found: str | None

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def wanted(self) -> str:
        return type_name(self.key)


def type_name(key: SearchAttributeKey[Any]) -> str:
    return _TYPE_NAMES[key.indexed_value_type]


def _server_type(value: int) -> str:
    try:
        return _TYPE_NAMES[SearchAttributeIndexedValueType(value)]
    except (ValueError, KeyError):
        return f"type {value}"


async def mismatches(client: Client, keys: Sequence[SearchAttributeKey[Any]]) -> list[Mismatch]:
    """The attributes among `keys` the client's namespace lacks or types differently."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    found = {
        **{name: int(v) for name, v in listed.system_attributes.items()},
        **{name: int(v) for name, v in listed.custom_attributes.items()},
    }
    out = []
    for key in keys:
        wanted = type_name(key)
        have = found.get(key.name)
        if have is None or _server_type(have) != wanted:
            out.append(Mismatch(key, None if have is None else _server_type(have)))
    return out


async def add(client: Client, missing: Sequence[Mismatch]) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                m.name: IndexedValueType.ValueType(m.key.indexed_value_type.value) for m in missing
            },
        )
    )


def describe(namespace: str, problems: Sequence[Mismatch], *, register_hint: bool) -> str:
    """One sentence: what is missing or wrong, and the commands that put it right."""
    missing = [p for p in problems if p.found is None]
    wrong = [p for p in problems if p.found is not None]
    parts = []
    if missing:
        names = ", ".join(f"{p.name} ({p.wanted})" for p in missing)
        commands = " and ".join(
            f"`temporal operator search-attribute create --namespace {namespace}"
            f" --name {p.name} --type {p.wanted}`"
            for p in missing
        )
        how = f"add them with {commands}"
        if register_hint:
            how += " or `travis-logs migrate --register` (a self-hosted server)"
        how += ", or in the namespace's settings on Temporal Cloud"
        parts.append(f"lacks the search attributes {names}; {how}")
    if wrong:
        names = ", ".join(f"{p.name} is {p.found}, not {p.wanted}" for p in wrong)
        parts.append(
            f"has search attributes of the wrong type ({names}); remove them with "
            "`temporal operator search-attribute remove` and add them with their types"
        )
    return f"TEMPORAL_NAMESPACE: namespace {namespace!r} " + "; it also ".join(parts)


async def ensure(
    client: Client, keys: Sequence[SearchAttributeKey[Any]], *, register: bool
) -> list[str]:
    """Check `keys` in the client's namespace; add the missing ones when `register`.

    Returns the names added. Raises ConfigError naming every attribute that stays missing or
    has the wrong type. A server that does not let this caller list attributes (Temporal
    Cloud with a restricted key) is trusted with a warning: it cannot be checked from here.
    """
    try:
        problems = await mismatches(client, keys)
    except RPCError as err:
        if err.status not in _NOT_ALLOWED:
            raise
        log.warning(
            "cannot list the search attributes of namespace %s (%s); make sure it has %s",
            client.namespace,
            err.message[:200],
            ", ".join(f"{k.name} ({type_name(k)})" for k in keys),
        )
        return []
    missing = [p for p in problems if p.found is None]
    if not register or not missing:
        if problems:
            raise ConfigError(describe(client.namespace, problems, register_hint=not register))
        return []
    try:
        await add(client, missing)
    except RPCError as err:
        if err.status not in _NOT_ALLOWED:
            raise
        refused = f"; this server refused to add them ({err.message[:200]})"
        raise ConfigError(
            describe(client.namespace, problems, register_hint=False) + refused
        ) from None
    for p in missing:
        log.info("added search attribute %s (%s) to %s", p.name, p.wanted, client.namespace)
    wrong = [p for p in problems if p.found is not None]
    if wrong:
        raise ConfigError(describe(client.namespace, wrong, register_hint=False))
    return [p.name for p in missing]
