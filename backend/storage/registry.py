"""Per-project extensions of the metric alias table and of the config-key → layer registry."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import ConfigKeyRuleRow, MetricAliasRow


class ProjectRegistryStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def aliases(self, project_id: int) -> dict[str, list[str]]:
        """``{canonical: [raw key, ...]}`` in the order they were added."""
        out: dict[str, list[str]] = {}
        rows = self.session.scalars(
            select(MetricAliasRow).where(MetricAliasRow.project_id == project_id).order_by(MetricAliasRow.id)
        )
        for row in rows:
            out.setdefault(row.canonical, []).append(row.alias)
        return out

    def set_alias(self, project_id: int, alias: str, canonical: str) -> None:
        """Make raw key ``alias`` stand for ``canonical`` in this project (replacing an earlier
        mapping of the same alias)."""
        row = self.session.scalar(
            select(MetricAliasRow).where(
                MetricAliasRow.project_id == project_id, MetricAliasRow.alias == alias
            )
        )
        if row is None:
            self.session.add(MetricAliasRow(project_id=project_id, alias=alias, canonical=canonical))
        else:
            row.canonical = canonical
        self.session.flush()

    def rules(self, project_id: int) -> dict[str, str]:
        """``{config key: layer}``."""
        rows = self.session.scalars(
            select(ConfigKeyRuleRow).where(ConfigKeyRuleRow.project_id == project_id).order_by(ConfigKeyRuleRow.id)
        )
        return {row.key: row.layer for row in rows}

    def set_rule(self, project_id: int, key: str, layer: str) -> None:
        """Classify config ``key`` as ``layer`` in this project (replacing an earlier rule)."""
        row = self.session.scalar(
            select(ConfigKeyRuleRow).where(
                ConfigKeyRuleRow.project_id == project_id, ConfigKeyRuleRow.key == key
            )
        )
        if row is None:
            self.session.add(ConfigKeyRuleRow(project_id=project_id, key=key, layer=layer))
        else:
            row.layer = layer
        self.session.flush()
