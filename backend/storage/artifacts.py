"""Artifact files under one root: a local directory or any fsspec URL (docs/API.md, "Artifacts").

Paths are relative, ``/``-separated, and checked before any file is touched: an absolute path,
an empty or ``.``/``..`` component, a backslash or a control character is refused, so nothing is
ever read or written outside the root. Uploads are streamed to a temporary name and renamed
once complete, so a refused or interrupted upload leaves no partial file behind.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from backend.errors import BadInput, NotFound, TooLarge

__all__ = ["ArtifactFile", "ArtifactStore", "check_artifact_path", "run_artifact_dir"]

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArtifactFile:
    """One entry of a listing: ``path`` relative to the listed directory's parent prefix."""

    path: str
    is_dir: bool
    size: int | None


def run_artifact_dir(project_id: int, run_id: int) -> str:
    """Where a run's artifacts live under the root (MLflow's ``<experiment>/<run>/artifacts``)."""
    return f"{project_id}/{run_id}/artifacts"


def check_artifact_path(path: str, field: str = "path", *, allow_empty: bool = False) -> str:
    """The path as given, or ``BadInput`` if it could leave the root."""
    if path == "" and allow_empty:
        return ""
    if not path or path.startswith(("/", "~")) or "\\" in path or ":" in path.split("/", 1)[0]:
        raise BadInput(f"{field}: {path[:80]!r} is not a relative artifact path", field=field)
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BadInput(f"{field}: {path[:80]!r} has an empty, '.' or '..' component", field=field)
    if not path.isprintable() or len(path) > 1000:
        raise BadInput(f"{field}: artifact paths are at most 1000 printable characters", field=field)
    return path


class ArtifactStore:
    """Files under ``root``; every method takes paths relative to it."""

    def __init__(self, root: str) -> None:
        import fsspec

        if "://" in root:
            self.fs, self.root = fsspec.core.url_to_fs(root)
        else:
            self.fs, self.root = fsspec.filesystem("file"), root
        self.root = self.root.rstrip("/")

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    async def write(self, path: str, chunks: AsyncIterator[bytes], limit: int) -> int:
        """Stream ``chunks`` into ``path`` (replacing it); ``TooLarge`` past ``limit`` bytes."""
        check_artifact_path(path)
        target = self._full(path)
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        partial = f"{posixpath.dirname(target)}/.upload-{uuid.uuid4().hex}"
        size = 0
        try:
            with self.fs.open(partial, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"artifact: larger than the limit of {limit} bytes", field="body")
                    out.write(chunk)
            if self.fs.isdir(target):
                raise BadInput(f"path: {path[:80]!r} is a directory of artifacts", field="path")
            self.fs.mv(partial, target)
        finally:
            if self.fs.exists(partial):
                self.fs.rm(partial)
        return size

    def size(self, path: str) -> int:
        """The file's size; ``NotFound`` if it is missing or a directory."""
        check_artifact_path(path)
        target = self._full(path)
        if not self.fs.isfile(target):
            raise NotFound(f"artifact {path!r} not found", field="path")
        return int(self.fs.size(target))

    def read(self, path: str) -> Iterator[bytes]:
        """The file's bytes in chunks (after ``size`` found it)."""
        with self.fs.open(self._full(path), "rb") as source:
            while chunk := source.read(_CHUNK):
                yield chunk

    def list(self, path: str) -> list[ArtifactFile]:
        """The direct children of directory ``path`` (``[]`` if there is none), paths given
        relative to the root, as MLflow's listing gives them relative to its root."""
        check_artifact_path(path, allow_empty=True)
        target = self._full(path)
        if not self.fs.isdir(target):
            return []
        entries: list[ArtifactFile] = []
        for info in self.fs.ls(target, detail=True):
            name = posixpath.basename(str(info["name"]).rstrip("/"))
            if name.startswith(".upload-"):
                continue
            is_dir = info.get("type") == "directory"
            entries.append(ArtifactFile(
                path=f"{path}/{name}" if path else name,
                is_dir=is_dir,
                size=None if is_dir else int(info.get("size") or 0),
            ))
        return sorted(entries, key=lambda e: e.path)

    def walk(self, path: str) -> list[ArtifactFile]:
        """Every file under directory ``path``, recursively, paths relative to ``path``."""
        found: list[ArtifactFile] = []
        pending = [path]
        while pending:
            for entry in self.list(pending.pop()):
                if entry.is_dir:
                    pending.append(entry.path)
                else:
                    found.append(ArtifactFile(entry.path[len(path) + 1 :], False, entry.size))
        return sorted(found, key=lambda e: e.path)

    def delete(self, path: str) -> None:
        check_artifact_path(path)
        target = self._full(path)
        if not self.fs.exists(target):
            raise NotFound(f"artifact {path!r} not found", field="path")
        self.fs.rm(target, recursive=True)

    def info(self) -> dict[str, Any]:
        return {"protocol": self.fs.protocol, "root": self.root}
