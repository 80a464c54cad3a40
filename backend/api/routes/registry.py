"""/api/v1/projects/{slug}/aliases and /config-rules: a project's own metric aliases and
config-key → layer rules, on top of the built-in tables."""

from __future__ import annotations

import re
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from backend.api.deps import ReadableProject, SessionDep, WritableProject
from backend.api.schemas import printable
from backend.compare.aliases import BUILTIN_ALIASES
from backend.compare.registry import LAYERS, classify_key
from backend.errors import BadInput
from backend.ingest import check_key
from backend.storage.registry import ProjectRegistryStore
from parityscope.wire import MAX_KEY_LENGTH

router = APIRouter(prefix="/api/v1/projects/{slug}", tags=["registry"])

# A canonical metric name: ASCII lowercase letters, digits and '_', not only '_'.
CANONICAL = re.compile(r"^[a-z0-9_]*[a-z0-9][a-z0-9_]*$")


class AliasIn(BaseModel):
    alias: str = Field(
        description="the raw metric key a trainer logs", json_schema_extra=printable(MAX_KEY_LENGTH)
    )
    canonical: str = Field(
        min_length=1, max_length=64, description="e.g. clip_rate, kl, entropy, reward",
        json_schema_extra={"pattern": CANONICAL.pattern},
    )


class AliasesOut(BaseModel):
    builtin: dict[str, list[str]]
    project: dict[str, list[str]]


class RuleIn(BaseModel):
    # Printable, and not only spaces.
    key: str = Field(
        min_length=1, max_length=MAX_KEY_LENGTH, description="config key, nested or flat",
        json_schema_extra={"pattern": r"^ *[^\p{C}\p{Z}](?:[^\p{C}\p{Z}]| )*$"},
    )
    layer: Literal["workload", "semantic", "inference-path", "objective"]


class RulesOut(BaseModel):
    layers: list[str]
    project: dict[str, str]


class ClassifiedKey(BaseModel):
    key: str
    layer: str


def _aliases(store: ProjectRegistryStore, project_id: int) -> AliasesOut:
    return AliasesOut(
        builtin={k: list(v) for k, v in BUILTIN_ALIASES.items()}, project=store.aliases(project_id)
    )


@router.get("/aliases", response_model=AliasesOut)
def get_aliases(project: ReadableProject, session: SessionDep) -> AliasesOut:
    return _aliases(ProjectRegistryStore(session), project.id)


@router.post("/aliases", status_code=201, response_model=AliasesOut)
def add_alias(body: AliasIn, project: WritableProject, session: SessionDep) -> AliasesOut:
    check_key(body.alias, "alias")
    if not CANONICAL.fullmatch(body.canonical):
        raise BadInput("canonical: use lowercase letters, digits and '_'", field="canonical")
    store = ProjectRegistryStore(session)
    store.set_alias(project.id, body.alias, body.canonical)
    return _aliases(store, project.id)


@router.get("/config-rules", response_model=RulesOut)
def get_rules(project: ReadableProject, session: SessionDep) -> RulesOut:
    return RulesOut(layers=list(LAYERS), project=ProjectRegistryStore(session).rules(project.id))


@router.post("/config-rules", status_code=201, response_model=RulesOut)
def add_rule(body: RuleIn, project: WritableProject, session: SessionDep) -> RulesOut:
    if not body.key.strip() or not body.key.isprintable():
        raise BadInput("key: a config key of printable characters", field="key")
    store = ProjectRegistryStore(session)
    store.set_rule(project.id, body.key.strip(), body.layer)
    return RulesOut(layers=list(LAYERS), project=store.rules(project.id))


@router.get("/config-rules/classify", response_model=list[ClassifiedKey])
def classify(project: ReadableProject, session: SessionDep, keys: str) -> list[ClassifiedKey]:
    """Which layer each comma-separated config key falls in, under this project's rules."""
    rules = ProjectRegistryStore(session).rules(project.id)
    names = [k.strip() for k in keys.split(",") if k.strip()]
    if not names:
        raise BadInput("keys: give at least one config key", field="keys")
    return [ClassifiedKey(key=k, layer=classify_key(k, rules)) for k in names]
