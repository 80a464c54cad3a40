"""The client's spool survives a crash at any point of a write (docs/RELIABILITY.md): a torn last
line is skipped by readers and cut off by the next append, and a rewrite is atomic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from parityscope import spool as spool_module
from parityscope.spool import SpoolError, SpoolFile, spool_files

HEADER = {"kind": "run", "url": "http://x", "project": "p", "body": {"name": "r", "external_id": "e"}}


def metrics(first: int, label: str = "reward") -> dict[str, Any]:
    return {"kind": "metrics", "body": {"steps": [first, first + 1], "values": {label: [0.5, 0.25]}}}


@pytest.fixture
def spool(tmp_path: Path) -> SpoolFile:
    file = SpoolFile(tmp_path / "p-run.jsonl")
    file.append(HEADER, [metrics(0), metrics(2)])
    yield file
    file.release()


def steps_of(file: SpoolFile) -> list[int]:
    return [s for body in file.read().metrics for s in body["steps"]]


@pytest.mark.parametrize("cut", [1, 7, 30])
def test_a_torn_last_line_is_skipped_by_readers(spool: SpoolFile, cut: int) -> None:
    whole = spool.path.read_bytes()
    spool.append(HEADER, [metrics(4, "ünïcödé")])
    torn = spool.path.read_bytes()[: len(whole) + cut]
    spool.path.write_bytes(torn)
    assert steps_of(spool) == [0, 1, 2, 3]


def test_a_last_line_of_bytes_that_are_not_text_is_skipped(spool: SpoolFile) -> None:
    # What some file systems leave at the end of a file being written when the machine stops.
    spool.path.write_bytes(spool.path.read_bytes() + b"\x00\x00\xff\xfe")
    assert steps_of(spool) == [0, 1, 2, 3]
    spool.append(HEADER, [metrics(4)])
    assert steps_of(spool) == [0, 1, 2, 3, 4, 5]


def test_the_next_append_cuts_a_torn_line_off_instead_of_joining_it(spool: SpoolFile) -> None:
    whole = spool.path.read_bytes()
    spool.path.write_bytes(whole + b'{"kind":"metrics","body":{"ste')
    spool.append(HEADER, [metrics(10)])
    assert spool.path.read_bytes().startswith(whole)
    assert steps_of(spool) == [0, 1, 2, 3, 10, 11]
    assert spool.path.read_bytes().count(b"\n") == 4


def test_a_torn_header_is_written_again(tmp_path: Path) -> None:
    file = SpoolFile(tmp_path / "p-new.jsonl")
    file.path.write_bytes(b'{"kind":"run","url":"http:')
    file.append(HEADER, [metrics(0)])
    contents = file.read()
    assert contents.url == "http://x" and steps_of(file) == [0, 1]
    file.release()


def test_a_damaged_line_before_the_last_is_still_an_error(spool: SpoolFile) -> None:
    lines = spool.path.read_bytes().split(b"\n")
    lines[1] = b"{not json"
    spool.path.write_bytes(b"\n".join(lines))
    with pytest.raises(SpoolError, match="line 2 is not JSON"):
        spool.read()


def test_a_rewrite_replaces_the_file_whole(spool: SpoolFile) -> None:
    spool.rewrite(HEADER, [metrics(2)])
    assert steps_of(spool) == [2, 3]
    assert not spool.temp_path.exists()
    assert [p.name for p in spool_files(spool.path.parent)] == [spool.path.name]


def test_a_crash_before_the_rename_leaves_the_old_spool_whole(
    spool: SpoolFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = spool.path.read_bytes()

    def crash(*_: Any) -> None:
        raise KeyboardInterrupt("the process dies here")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        spool.rewrite(HEADER, [metrics(2)])
    monkeypatch.undo()
    # The temporary file is complete, but nothing reads it: the spool is as it was.
    assert spool.temp_path.exists() and spool.path.read_bytes() == before
    assert steps_of(spool) == [0, 1, 2, 3]
    assert [p.name for p in spool_files(spool.path.parent)] == [spool.path.name]
    # The next rewrite replaces the leftover, and removing the spool removes both.
    spool.rewrite(HEADER, [metrics(2)])
    assert steps_of(spool) == [2, 3] and not spool.temp_path.exists()
    spool.temp_path.write_bytes(b'{"kind":"run"')
    spool.remove()
    assert not spool.path.exists() and not spool.temp_path.exists()


def test_a_rewrite_is_synced_before_and_after_the_rename(
    spool: SpoolFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync directory" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(spool_module.os, "fsync", fsync)
    monkeypatch.setattr(spool_module.os, "replace", replace)
    spool.rewrite(HEADER, [metrics(2)])
    assert events == ["fsync file", "replace", "fsync directory"]
