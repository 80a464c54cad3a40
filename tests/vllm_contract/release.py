"""A released vLLM wheel read as source: fetched once (no dependencies), never imported.

The contract tier (docs/VLLM.md) checks every vLLM name the adapters use against the Python
sources of the releases they target. Parsing is enough: a field, a literal value, a keyword
argument or an environment variable is either in the release's source or it is not.

``python -m tests.vllm_contract.release`` fetches the wheels into the cache directory
(``$PARITYSCOPE_VLLM_WHEELS``, default ``.parityscope-cache/vllm-wheels``) and exits non-zero
with the reason when it cannot.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

__all__ = ["RELEASES", "VllmRelease", "fetch", "wheel_dir"]

RELEASES: tuple[str, ...] = ("0.8.5", "0.18.1")
_REPO = Path(__file__).resolve().parents[2]


def wheel_dir() -> Path:
    return Path(os.environ.get("PARITYSCOPE_VLLM_WHEELS") or _REPO / ".parityscope-cache" / "vllm-wheels")


def wheel_path(version: str) -> Path | None:
    found = sorted(wheel_dir().glob(f"vllm-{version}-*.whl"))
    return found[0] if found else None


def fetch(version: str) -> Path:
    """The cached wheel of ``version``, downloaded with pip (``--no-deps``) when missing."""
    cached = wheel_path(version)
    if cached is not None:
        return cached
    wheel_dir().mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", f"vllm=={version}",
               "-d", str(wheel_dir())]
    done = subprocess.run(command, capture_output=True, text=True)
    cached = wheel_path(version)
    if done.returncode != 0 or cached is None:
        raise RuntimeError(f"could not download vllm=={version}: {(done.stderr or done.stdout).strip()[-500:]}")
    return cached


@dataclass
class VllmRelease:
    version: str
    wheel: Path
    _trees: dict[str, ast.Module] = field(default_factory=dict)

    @cached_property
    def _zip(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(self.wheel)

    def source(self, path: str) -> str:
        """The text of ``vllm/<path>`` in the wheel."""
        return self._zip.read(f"vllm/{path}").decode()

    def has(self, path: str) -> bool:
        return f"vllm/{path}" in self._zip.namelist()

    def tree(self, path: str) -> ast.Module:
        if path not in self._trees:
            self._trees[path] = ast.parse(self.source(path), filename=f"vllm-{self.version}/vllm/{path}")
        return self._trees[path]

    # -- what a module declares --------------------------------------------------------------
    def class_def(self, path: str, name: str) -> ast.ClassDef:
        for node in self.tree(path).body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                return node
        raise LookupError(f"vllm-{self.version}: no class {name} in vllm/{path}")

    def fields(self, path: str, class_name: str) -> set[str]:
        """Annotated class attributes (dataclass / msgspec.Struct fields), with same-module bases'."""
        node = self.class_def(path, class_name)
        names = {
            item.target.id for item in node.body
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
        }
        for base in node.bases:
            if isinstance(base, ast.Name):
                try:
                    names |= self.fields(path, base.id)
                except LookupError:
                    pass
        return names

    def method(self, path: str, class_name: str, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
        for item in self.class_def(path, class_name).body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == name:
                return item
        raise LookupError(f"vllm-{self.version}: {class_name}.{name} not in vllm/{path}")

    def function(self, path: str, name: str) -> ast.FunctionDef:
        for node in self.tree(path).body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return node
        raise LookupError(f"vllm-{self.version}: no function {name} in vllm/{path}")

    def literal(self, path: str, name: str) -> set[str]:
        """The string values of ``name = Literal["a", "b", ...]`` at module level."""
        for node in self.tree(path).body:
            if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
                    and isinstance(node.value, ast.Subscript)):
                return {c.value for c in ast.walk(node.value.slice) if isinstance(c, ast.Constant)}
        raise LookupError(f"vllm-{self.version}: no Literal {name} in vllm/{path}")

    def dict_keys(self, path: str, name: str) -> set[str]:
        """String keys of the module-level dict literal assigned to ``name``."""
        for node in self.tree(path).body:
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) else None)
            if isinstance(target, ast.Name) and target.id == name and isinstance(node.value, ast.Dict):
                return {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        raise LookupError(f"vllm-{self.version}: no dict {name} in vllm/{path}")

    def strings(self, path: str) -> set[str]:
        return {n.value for n in ast.walk(self.tree(path)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, str]:
    """Parameter name -> kind (``positional``, ``keyword-only``) of a parsed function."""
    args = function.args
    kinds = {a.arg: "positional" for a in (*args.posonlyargs, *args.args)}
    kinds.update({a.arg: "keyword-only" for a in args.kwonlyargs})
    return kinds


def required_parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    required = {a.arg for a in positional[: len(positional) - len(args.defaults)]}
    required |= {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None}
    return required - {"self", "cls"}


def main() -> int:
    failed = []
    for version in RELEASES:
        try:
            print(f"vllm=={version}: {fetch(version)}", flush=True)
        except RuntimeError as exc:
            failed.append(str(exc))
            print(exc, file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
