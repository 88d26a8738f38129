"""workflows/state.py, read as a syntax tree: each function changes the state or answers a
question about it, never both (no server, no import of the module under test)."""

from __future__ import annotations

import ast
from pathlib import Path

import workflows

STATE = Path(workflows.__file__).parent / "state.py"
MUTATORS = {"add", "append", "extend", "insert", "update", "clear", "pop", "remove", "discard"}


def _root(node: ast.expr) -> str | None:
    """The name an attribute or subscript chain starts from (`s` of `s.stats.timeline[k]`)."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        found = []
        for target in node.targets:
            found.extend(target.elts if isinstance(target, ast.Tuple) else [target])
        return found
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return [node.target]
    if isinstance(node, ast.Delete):
        return list(node.targets)
    return []


def _writes_directly(fn: ast.FunctionDef, state: str) -> tuple[bool, set[str]]:
    """Whether `fn` writes through `state` (or a local alias of a part of it), and the
    module functions it hands `state` to."""
    roots, calls, writes = {state}, set(), False
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and _root(node.value) in roots:
            roots |= {t.id for t in node.targets if isinstance(t, ast.Name)}  # an alias
    for node in ast.walk(fn):
        for target in _targets(node):
            if isinstance(target, ast.Attribute | ast.Subscript) and _root(target) in roots:
                writes = True
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in MUTATORS:
                writes |= _root(func.value) in roots
            if isinstance(func, ast.Name) and any(
                isinstance(a, ast.Name) and a.id in roots for a in node.args
            ):
                calls.add(func.id)
    return writes, calls


def _answers(fn: ast.FunctionDef) -> bool:
    return any(
        isinstance(node, ast.Return)
        and node.value is not None
        and not (isinstance(node.value, ast.Constant) and node.value.value is None)
        for node in ast.walk(fn)
    )


def shapes(source: str) -> dict[str, tuple[bool, bool]]:
    """(writes, answers) of each module-level function whose first parameter is the state."""
    functions = {
        node.name: node
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.args.args
    }
    direct = {name: _writes_directly(fn, fn.args.args[0].arg) for name, fn in functions.items()}
    writers = {name for name, (writes, _) in direct.items() if writes}
    grew = True
    while grew:  # a function that hands the state to a writer writes too
        more = {n for n, (_, calls) in direct.items() if calls & writers} - writers
        writers |= more
        grew = bool(more)
    return {name: (name in writers, _answers(fn)) for name, fn in functions.items()}


def test_every_state_function_changes_the_state_or_answers_never_both() -> None:
    found = shapes(STATE.read_text(encoding="utf-8"))
    both = sorted(name for name, (writes, answers) in found.items() if writes and answers)
    assert both == [], f"these change the state and return a value: {both}"
    # The reading sees what it is meant to see (else the test above could not fail).
    assert found["on_parts"] == (True, False) and found["on_part_milestones"] == (True, False)
    assert found["on_redacted"] == (True, False)  # writes through _remember and request
    assert found["is_served"] == (False, True) and found["force_verdict"] == (False, True)


def test_the_reading_catches_a_question_that_writes() -> None:
    """A function that writes through an alias, a mutator or a writer it calls, and answers."""
    source = """
def _bump(s):
    s.revision += 1

def aliased(s):
    timeline = s.stats.timeline
    timeline["x"] = 1
    return True

def mutating(s, ref):
    s.known.add(ref)
    return ref

def delegating(s):
    _bump(s)
    return s.revision

def asking(s):
    return s.revision > 0
"""
    found = shapes(source)
    assert {name for name, (w, a) in found.items() if w and a} == {
        "aliased",
        "mutating",
        "delegating",
    }
    assert found["asking"] == (False, True) and found["_bump"] == (True, False)
