"""Where Workbench keeps its files: every folder absolute, resolved once from the environment."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from workbench.paths import Paths, atomic_write_text


def test_paths_from_a_relative_environment_are_absolute(tmp_path):
    paths = Paths.from_env(
        {
            "HOME": "home",
            "NVWB_CONFIG_DIR": "c",
            "NVWB_STATE_DIR": "./s",
            "NVWB_RUNTIME_DIR": "../r",
            "NVWB_PROJECTS_DIR": "p",
        },
        cwd=tmp_path,
    )
    assert paths.config_dir == tmp_path / "c"
    assert paths.state_dir == tmp_path / "s"
    assert paths.runtime_dir.resolve() == tmp_path.parent.resolve() / "r"
    assert paths.projects_dir == tmp_path / "p"
    xdg = Paths.from_env(
        {"HOME": "/h", "XDG_CONFIG_HOME": "x", "XDG_RUNTIME_DIR": "y"}, cwd=tmp_path
    )
    assert xdg.config_dir == tmp_path / "x" / "workbench"
    assert xdg.runtime_dir == tmp_path / "y" / "workbench"
    assert Paths.from_env({"HOME": "hh"}, cwd=tmp_path).state_dir.is_absolute()


def test_as_env_names_the_same_folders_from_anywhere(tmp_path):
    paths = Paths.from_env(
        {"HOME": "/h", "NVWB_CONFIG_DIR": "c", "NVWB_STATE_DIR": "s"}, cwd=tmp_path
    )
    elsewhere = Paths.from_env({"HOME": "/h", **paths.as_env()}, cwd=Path("/"))
    assert elsewhere == paths


def test_the_working_directory_is_not_asked_for_when_nothing_is_relative(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    here = os.getcwd()
    os.chdir(gone)
    try:
        gone.rmdir()  # Path.cwd() would now fail
        paths = Paths.from_env({"HOME": "/h", "NVWB_RUNTIME_DIR": "/r"})
    finally:
        os.chdir(here)
    assert paths.config_dir == Path("/h/.config/workbench")


def test_atomic_writes_from_many_threads_never_leave_half_a_file(tmp_path):
    # The service writes from many threads at once (33 waits creating contexts.json on first
    # use left it empty for a moment): each write must go through a temporary file of its own.
    target = tmp_path / "contexts.json"
    texts = [json.dumps({"writer": n, "pad": "x" * 20_000}) for n in range(16)]
    seen: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.append(target.read_text(encoding="utf-8"))

    def write(text: str) -> None:
        try:
            for _ in range(30):
                atomic_write_text(target, text, durable=False)
        except OSError as exc:  # another writer renamed this one's temporary file away
            failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(text,)) for text in texts]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reader.join()
    assert failures == []
    assert target.read_text(encoding="utf-8") in texts
    assert all(text in texts for text in seen), "a reader saw a half-written file"
    assert [p.name for p in tmp_path.iterdir()] == ["contexts.json"]


def test_an_atomic_write_never_replaces_what_is_not_a_regular_file(tmp_path: Path) -> None:
    """A pin file pointed at ``/dev/null`` (a test did so) was replaced by a regular file, as
    root, breaking every program on the machine that reads it. A FIFO stands in for the device."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    for target in (fifo, folder):
        with pytest.raises(OSError, match="not a regular file"):
            atomic_write_text(target, "pinned key\n", mode=0o600)
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and folder.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "folder"]  # no temp left
