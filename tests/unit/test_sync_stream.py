"""The transfer stream between the laptop's code and the real agent script, without SSH.

Each direction is checked against the other implementation (``LocalTree`` writes, the agent's
``receive`` lands; the agent's ``send`` writes, ``LocalTree`` lands), so the two copies of the
format cannot drift apart. A stream cut short must leave no file and no temp file behind.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.resources import resource_path
from workbench.sync.local import LocalTree
from workbench.sync.manifest import Entry, stat_path
from workbench.sync.wire import SendItem, StreamHeader

AGENT = resource_path("agent", "agent.py")


def agent(command: str, root: Path, stdin: bytes) -> bytes:
    done = subprocess.run(
        [sys.executable, "-S", str(AGENT), command, str(root)],
        input=stdin,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def items_for(root: Path, *names: str) -> list[SendItem]:
    out = []
    for name in names:
        entry = stat_path(root, name)
        assert entry is not None
        out.append(SendItem(name, name, entry, None))
    return out


def temp_files(root: Path) -> list[str]:
    return [n for _, _, files in os.walk(root) for n in files if n.startswith(".wbsync-")]


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Path, Path]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "sub").mkdir()
    (src / "small.txt").write_text("small ✓")
    (src / "sub" / "big.bin").write_bytes(os.urandom(3 << 20))  # sendfile's size
    (src / "empty").write_bytes(b"")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    os.utime(src / "small.txt", ns=(1_600_000_000_123_456_789,) * 2)
    return src, dst


NAMES = ("small.txt", "sub/big.bin", "empty", "run.sh")


def assert_same(src: Path, dst: Path, name: str) -> None:
    a, b = stat_path(src, name), stat_path(dst, name)
    assert a is not None and b is not None
    assert (dst / name).read_bytes() == (src / name).read_bytes()
    assert (a.size, a.mtime_ns, a.mode) == (b.size, b.mtime_ns, b.mode)


def test_laptop_stream_lands_through_the_agent(sides: tuple[Path, Path]) -> None:
    src, dst = sides
    stream = io.BytesIO()
    verdicts = LocalTree(src).write_stream(items_for(src, *NAMES), stream)
    assert all(v.ok for v in verdicts)
    lines = agent("receive", dst, stream.getvalue()).decode().splitlines()
    results = [json.loads(line) for line in lines]
    assert [r["path"] for r in results] == list(NAMES)
    assert all(r["ok"] for r in results), results
    for name in NAMES:
        assert_same(src, dst, name)
    assert temp_files(dst) == []


def test_agent_stream_lands_on_the_laptop(sides: tuple[Path, Path]) -> None:
    src, dst = sides
    request = "".join(json.dumps(i.to_json()) + "\n" for i in items_for(src, *NAMES))
    stream = agent("send", src, request.encode())
    results = LocalTree(dst).read_stream(io.BytesIO(stream), items_for(src, *NAMES))
    assert [r.path for r in results] == list(NAMES)
    assert all(r.ok for r in results), results
    for name in NAMES:
        assert_same(src, dst, name)
        assert results[NAMES.index(name)].digest  # hashed as it landed, for the agreed state


def test_stream_cut_inside_a_file_leaves_nothing_on_either_receiver(
    sides: tuple[Path, Path],
) -> None:
    src, dst = sides
    stream = io.BytesIO()
    LocalTree(src).write_stream(items_for(src, "small.txt", "sub/big.bin"), stream)
    cut = stream.getvalue()[: len(stream.getvalue()) - (1 << 20)]  # inside big.bin
    results = [json.loads(line) for line in agent("receive", dst, cut).decode().splitlines()]
    assert results[0]["ok"] and results[0]["path"] == "small.txt"
    assert results[1] == {"path": "sub/big.bin", "ok": False, "error": "transfer ended early"}
    assert not (dst / "sub" / "big.bin").exists()
    assert temp_files(dst) == []
    laptop = dst.parent / "laptop"
    laptop.mkdir()
    with pytest.raises(EOFError):
        LocalTree(laptop).read_stream(io.BytesIO(cut), items_for(src, "small.txt", "sub/big.bin"))
    assert (laptop / "small.txt").read_text() == "small ✓"
    assert not (laptop / "sub" / "big.bin").exists()
    assert temp_files(laptop) == []


def test_a_bad_trailer_or_a_changed_destination_keeps_what_was_there(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "kept.txt").write_text("edited on this side")
    here = stat_path(dst, "kept.txt")
    assert here is not None
    planned = Entry("kept.txt", "file", here.size, here.mtime_ns - 1, 0o644)  # not what is there
    stream = io.BytesIO()
    asked = []
    for name, expect, trailer in (
        ("kept.txt", planned, {"ok": True}),
        ("new.txt", None, {"ok": False, "reason": "changed while it was being sent"}),
    ):
        stream.write(StreamHeader(name, 5, 0o644, 1, expect).encode() + b"hello")
        stream.write((json.dumps(trailer) + "\n").encode())
        asked.append(SendItem(name, name, Entry(name, "file", 5, 1, 0o644), expect))
    for results in (
        [json.loads(line) for line in agent("receive", dst, stream.getvalue()).splitlines()],
        [r.to_json() for r in LocalTree(dst).read_stream(io.BytesIO(stream.getvalue()), asked)],
    ):
        assert [(r["path"], r["ok"], r.get("changed")) for r in results] == [
            ("kept.txt", False, True),
            ("new.txt", False, True),
        ]
        assert (dst / "kept.txt").read_text() == "edited on this side"
        assert not (dst / "new.txt").exists()
        assert temp_files(dst) == []


def test_a_folder_moved_away_mid_file_does_not_swallow_the_file(tmp_path: Path) -> None:
    """The agent writes relative to each folder's descriptor; if the folder is moved while a
    file is on its way, the file must not land in the moved folder (it would look synced at
    its old path): it is dropped and retried."""
    dst = tmp_path / "dst"
    (dst / "a").mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-S", str(AGENT), "receive", str(dst)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(StreamHeader("a/x.bin", 4, 0o644, 1, None).encode() + b"data")
    proc.stdin.flush()
    deadline = time.monotonic() + 10
    while not temp_files(dst / "a") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert temp_files(dst / "a"), "the agent never started the file"
    (dst / "a").rename(tmp_path / "moved")
    proc.stdin.write(b'{"ok": true}\n')
    proc.stdin.close()
    result = json.loads(proc.stdout.read())
    assert proc.wait(10) == 0
    assert result["ok"] is False and result.get("changed") is True, result
    assert not (dst / "a").exists()
    assert os.listdir(tmp_path / "moved") == []  # neither the file nor its temp file
