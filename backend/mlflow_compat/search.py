"""MLflow's run search: the basic filter grammar and ``order_by``, evaluated on plain values.

Supported (the part of MLflow's grammar that tracking scripts use):
- clauses joined by ``AND``: ``<entity>.<key> <comparator> <value>``;
- entities ``attributes.`` (also ``attribute.``, ``attr.``, ``run.``, or no prefix) with
  ``status``, ``run_name``, ``run_id``, ``user_id``, ``start_time``, ``end_time``;
  ``params.``, ``tags.``, ``metrics.`` (a metric compares its latest value);
- keys with spaces or dots quoted with backticks or double quotes: ``params.`my key```;
- comparators ``= != LIKE ILIKE`` and ``IN (...)``/``NOT IN (...)`` for text,
  ``= != > >= < <=`` for numbers (metrics, start_time, end_time).
Anything else is rejected with a message naming the clause.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from backend.errors import BadInput

__all__ = ["Clause", "OrderKey", "RunView", "matches", "parse_filter", "parse_order_by", "sort_runs"]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<backtick>`[^`]*`)
      | (?P<op>!=|>=|<=|=|>|<)
      | (?P<punct>[(),])
      | (?P<word>[^\s=!<>(),'"`]+)
    )""",
    re.VERBOSE,
)
_ENTITY = {
    "attributes": "attribute", "attribute": "attribute", "attr": "attribute", "run": "attribute",
    "params": "param", "param": "param", "parameters": "param", "parameter": "param",
    "tags": "tag", "tag": "tag",
    "metrics": "metric", "metric": "metric",
}  # fmt: skip
_TEXT_ATTRIBUTES = {"status", "run_name", "run_id", "user_id"}
_NUMBER_ATTRIBUTES = {"start_time", "end_time"}
_TEXT_OPS = {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}
_NUMBER_OPS = {"=", "!=", ">", ">=", "<", "<="}


@dataclass(frozen=True)
class Clause:
    entity: str  # attribute | param | tag | metric
    key: str
    op: str
    value: Any  # str, float, or a tuple of str for IN


@dataclass(frozen=True)
class OrderKey:
    entity: str
    key: str
    descending: bool


@dataclass
class RunView:
    """What search sees of one run."""

    attributes: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise BadInput(f"filter: cannot parse {text[pos:pos + 30]!r}", field="filter")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", r"\1", body) if token[0] in "'\"" else body


def _identifier(tokens: list[tuple[str, str]], i: int, where: str) -> tuple[str, str, int]:
    kind, text = tokens[i]
    if kind != "word":
        raise BadInput(f"filter: expected an identifier in {where!r}", field="filter")
    prefix, dot, key = text.partition(".")
    if dot and not key and i + 1 < len(tokens) and tokens[i + 1][0] in ("backtick", "string"):
        key = _unquote(tokens[i + 1][1])
        i += 1
    if not dot:
        prefix, key = "attributes", text
    entity = _ENTITY.get(prefix.lower())
    if entity is None or not key:
        raise BadInput(
            f"filter: {text!r} in {where!r} is not attributes.*, params.*, tags.* or metrics.*",
            field="filter",
        )
    if entity == "attribute" and key not in _TEXT_ATTRIBUTES | _NUMBER_ATTRIBUTES:
        known = ", ".join(sorted(_TEXT_ATTRIBUTES | _NUMBER_ATTRIBUTES))
        raise BadInput(f"filter: unknown attribute {key!r} in {where!r} (known: {known})", field="filter")
    return entity, key, i + 1


def _is_numeric(entity: str, key: str) -> bool:
    return entity == "metric" or (entity == "attribute" and key in _NUMBER_ATTRIBUTES)


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of a filter string; an empty or missing filter has none."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    clauses: list[Clause] = []
    i = 0
    while i < len(tokens):
        where = " ".join(t for _, t in tokens[i : i + 4])
        entity, key, i = _identifier(tokens, i, where)
        if i >= len(tokens):
            raise BadInput(f"filter: {where!r} has no comparator", field="filter")
        kind, op = tokens[i]
        op = op.upper()
        i += 1
        if op == "NOT" and i < len(tokens) and tokens[i][1].upper() == "IN":
            op, i = "NOT IN", i + 1
        allowed = _NUMBER_OPS if _is_numeric(entity, key) else _TEXT_OPS
        if op not in allowed:
            raise BadInput(
                f"filter: comparator {op!r} is not supported for {entity} {key!r} "
                f"(use one of {', '.join(sorted(allowed))})",
                field="filter",
            )
        value: Any
        if op in ("IN", "NOT IN"):
            if i >= len(tokens) or tokens[i] != ("punct", "("):
                raise BadInput(f"filter: {op} needs a parenthesised list in {where!r}", field="filter")
            items: list[str] = []
            i += 1
            while i < len(tokens) and tokens[i] != ("punct", ")"):
                if tokens[i][0] == "string":
                    items.append(_unquote(tokens[i][1]))
                elif tokens[i] != ("punct", ","):
                    raise BadInput(f"filter: {op} takes quoted strings in {where!r}", field="filter")
                i += 1
            if i >= len(tokens):
                raise BadInput(f"filter: unclosed list in {where!r}", field="filter")
            i += 1
            value = tuple(items)
        else:
            if i >= len(tokens):
                raise BadInput(f"filter: {where!r} has no value", field="filter")
            vkind, vtext = tokens[i]
            i += 1
            if _is_numeric(entity, key):
                try:
                    value = float(vtext)
                except ValueError:
                    raise BadInput(f"filter: {vtext!r} in {where!r} is not a number", field="filter") from None
            elif vkind == "string":
                value = _unquote(vtext)
            else:
                raise BadInput(f"filter: the value in {where!r} must be a quoted string", field="filter")
        clauses.append(Clause(entity, key, op, value))
        if i < len(tokens):
            if tokens[i][1].upper() != "AND":
                raise BadInput(
                    f"filter: expected AND before {tokens[i][1]!r} (OR is not supported)", field="filter"
                )
            i += 1
            if i >= len(tokens):
                raise BadInput("filter: nothing after the last AND", field="filter")
    return clauses


def _like(pattern: str, flags: int = 0) -> re.Pattern[str]:
    parts = [".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), flags | re.DOTALL)


def _lookup(view: RunView, entity: str, key: str) -> Any:
    source = {
        "attribute": view.attributes,
        "param": view.params,
        "tag": view.tags,
        "metric": view.metrics,
    }[entity]
    return source.get(key)


def _holds(clause: Clause, actual: Any) -> bool:
    if actual is None:
        return False
    op, expected = clause.op, clause.value
    if isinstance(expected, float):
        actual = float(actual)
        if math.isnan(actual):
            return False
        return {
            "=": actual == expected,
            "!=": actual != expected,
            ">": actual > expected,
            ">=": actual >= expected,
            "<": actual < expected,
            "<=": actual <= expected,
        }[op]
    actual = str(actual)
    if op == "=":
        return actual == expected
    if op == "!=":
        return actual != expected
    if op == "LIKE":
        return _like(expected).fullmatch(actual) is not None
    if op == "ILIKE":
        return _like(expected, re.IGNORECASE).fullmatch(actual) is not None
    if op == "IN":
        return actual in expected
    return actual not in expected  # NOT IN


def matches(clauses: list[Clause], view: RunView) -> bool:
    """Whether a run satisfies every clause; a run lacking the key never matches."""
    return all(_holds(c, _lookup(view, c.entity, c.key)) for c in clauses)


def parse_order_by(items: list[str] | None) -> list[OrderKey]:
    keys: list[OrderKey] = []
    for item in items or []:
        tokens = _tokens(item)
        if not tokens:
            raise BadInput(f"order_by: {item!r} should be '<key> [ASC|DESC]'", field="order_by")
        entity, key, i = _identifier(tokens, 0, item)
        descending = False
        if i < len(tokens):
            direction = tokens[i][1].upper()
            if direction not in ("ASC", "DESC") or i + 1 != len(tokens):
                raise BadInput(f"order_by: {item!r} should be '<key> [ASC|DESC]'", field="order_by")
            descending = direction == "DESC"
        keys.append(OrderKey(entity, key, descending))
    return keys


def _sortable(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def sort_runs(views: list[RunView], order: list[OrderKey]) -> list[RunView]:
    """Sorted by ``order`` then newest first (MLflow's default); missing values sort last."""
    keys = [*order, OrderKey("attribute", "start_time", True), OrderKey("attribute", "run_id", True)]
    result = list(views)
    for key in reversed(keys):
        present = [v for v in result if _sortable(_lookup(v, key.entity, key.key))]
        missing = [v for v in result if not _sortable(_lookup(v, key.entity, key.key))]

        def sort_key(v: RunView, k: OrderKey = key) -> Any:
            value = _lookup(v, k.entity, k.key)
            if k.entity == "attribute" and k.key == "run_id":
                return int(value)
            return value

        present.sort(key=sort_key, reverse=key.descending)
        result = present + missing
    return result
