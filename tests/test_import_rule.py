"""The layering rule of the source tree, read from the code itself (see docs/ARCHITECTURE.md):
imports point down, api → compare/ingest/jobs → storage → domain.

- ``backend/storage`` imports neither the API, nor the comparison, nor ingestion, nor the job spec;
- ``backend/compare`` is pure computation: it does not import storage;
- ``workers/`` and ``parityscope/`` are clients of the HTTP API: they never import ``backend``.

Every import counts, at module level or inside a function; only imports under
``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (importing package, forbidden module prefixes)
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("backend.storage", ("backend.api", "backend.compare", "backend.comparing", "backend.ingest",
                         "backend.job_spec")),
    ("backend.compare", ("backend.storage",)),
    ("workers", ("backend",)),
    ("parityscope", ("backend",)),
]

def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Every module ``source`` imports when it runs, relative imports resolved against ``module``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            found.add(prefix)
            # ``from package import module`` imports the module too.
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(root: Path = ROOT) -> set[tuple[str, str]]:
    """(importing module, forbidden module) for every import against ``RULES`` under ``root``."""
    found: set[tuple[str, str]] = set()
    for package, forbidden in RULES:
        for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
            module = module_name(path, root)
            for imported in imported_modules(path.read_text(), module, path.name == "__init__.py"):
                if any(_within(imported, prefix) for prefix in forbidden):
                    found.add((module, _owning_module(imported, root)))
    return found


def _owning_module(name: str, root: Path) -> str:
    """``backend.compare.aliases.PARITY_METRICS`` → ``backend.compare.aliases``."""
    parts = name.split(".")
    while len(parts) > 1:
        base = root.joinpath(*parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            break
        parts.pop()
    return ".".join(parts)


def test_imports_point_down() -> None:
    broken = violations()
    assert not broken, "imports against the layering rule:\n" + "\n".join(f"  {a} imports {b}" for a, b in sorted(broken))


def test_no_route_imports_another_route() -> None:
    """A route module needs nothing from another route: what two routes share lives below them."""
    routes = ROOT / "backend" / "api" / "routes"
    found = []
    for path in sorted(routes.glob("*.py")):
        module = module_name(path, ROOT)
        for imported in imported_modules(path.read_text(), module, path.name == "__init__.py"):
            owner = _owning_module(imported, ROOT)
            if _within(owner, "backend.api.routes") and owner not in (module, "backend.api.routes"):
                found.append((module, owner))
    assert not found, f"routes importing other routes: {found}"


@pytest.mark.parametrize(
    ("package", "source", "expected"),
    [
        ("backend/storage/x.py", "from backend.api.deps import SessionDep\n", ("backend.storage.x", "backend.api.deps")),
        ("backend/storage/x.py", "def f():\n    from ..compare import align\n", ("backend.storage.x", "backend.compare.align")),
        ("backend/storage/x.py", "import backend.ingest\n", ("backend.storage.x", "backend.ingest")),
        ("backend/compare/x.py", "from backend import storage\n", ("backend.compare.x", "backend.storage")),
        ("workers/x.py", "from backend.storage.values import encode_value\n", ("workers.x", "backend.storage.values")),
        ("parityscope/x.py", "import backend\n", ("parityscope.x", "backend")),
    ],
)
def test_a_forbidden_import_is_found(tmp_path: Path, package: str, source: str, expected: tuple[str, str]) -> None:
    for module in ("backend/api/deps.py", "backend/compare/align.py", "backend/ingest.py",
                   "backend/storage/values.py"):
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).touch()
    for init in ("backend", "backend/api", "backend/compare", "backend/storage"):
        (tmp_path / init / "__init__.py").touch()
    (tmp_path / package).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / package).write_text(source)
    assert expected in violations(tmp_path)


def test_type_checking_imports_and_allowed_imports_are_not_counted(tmp_path: Path) -> None:
    (tmp_path / "backend/storage").mkdir(parents=True)
    (tmp_path / "backend/storage/x.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from backend.domain import Run\n"
        "from backend.storage.values import from_storage\n"
        "from parityscope.wire import encode_value\n"
        "if TYPE_CHECKING:\n    from backend.api.deps import SessionDep\n"
    )
    assert violations(tmp_path) == set()
