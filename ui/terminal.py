"""The app's "Terminal" action: the user's own terminal emulator, running ``nvwb attach``.

Editors do it this way (VS Code's "open in external terminal"): the app does not draw a terminal;
it starts the one the user chose on a command, and that command (``nvwb attach -c CONTEXT -p
PROJECT``) holds the context with a lease of its own process while the shell runs, so an open
terminal keeps the machine up like a window and counts as use for the idle guard (an SSH
terminal on the host).

Which emulator: ``NVWB_TERMINAL`` (a program, given the command after ``-e``, or a template with
``{command}``), else ``TERMINAL``, else the system's: ``x-terminal-emulator`` and the common
Linux ones, Terminal.app through ``osascript`` on macOS, Windows Terminal or ``cmd`` on Windows.
The Workbench folders go on the command line (``env NVWB_...=``) where the emulator is a server
that does not hand its client's environment on (gnome-terminal).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from workbench import osproc
from workbench.errors import UsageError
from workbench.paths import Paths

# Linux emulators and how each is told to run a command.
_LINUX: tuple[tuple[str, list[str]], ...] = (
    ("x-terminal-emulator", ["-e"]),
    ("gnome-terminal", ["--"]),
    ("konsole", ["-e"]),
    ("xfce4-terminal", ["-x"]),
    ("kitty", []),
    ("alacritty", ["-e"]),
    ("wezterm", ["start", "--"]),
    ("foot", []),
    ("tilix", ["-e"]),
    ("xterm", ["-e"]),
)
_FLAGS = dict(_LINUX)


def nvwb_command() -> list[str]:
    """How to run ``nvwb`` from here: the frozen bundle's executable beside the app, else this
    interpreter's ``-m nvwb``."""
    if getattr(sys, "frozen", False):
        name = "nvwb.exe" if osproc.WINDOWS else "nvwb"
        return [str(Path(sys.executable).with_name(name))]
    return [sys.executable, "-m", "nvwb"]


def attach_command(paths: Paths, context: str, project: Path) -> list[str]:
    """``nvwb attach`` for ``project`` on ``context``, with this app's folders."""
    folders = [f"{name}={value}" for name, value in sorted(paths.as_env().items())]
    prefix = [] if osproc.WINDOWS else ["env", *folders]
    return [*prefix, *nvwb_command(), "-c", context, "-p", str(project), "attach"]


def terminal_argv(
    command: Sequence[str], env: Mapping[str, str], *, title: str = "Workbench"
) -> list[str]:
    """The emulator's command line that runs ``command`` in a new window."""
    chosen = env.get("NVWB_TERMINAL") or env.get("TERMINAL")
    if chosen:
        if "{command}" in chosen:
            words = shlex.split(chosen)
            joined = shlex.join(command)
            return [word.replace("{command}", joined) for word in words]
        words = shlex.split(chosen)
        flags = _FLAGS.get(Path(words[0]).name, ["-e"]) if len(words) == 1 else []
        return [*words, *flags, *command]
    if osproc.MACOS:
        script = shlex.join(command).replace("\\", "\\\\").replace('"', '\\"')
        return ["osascript", "-e", f'tell application "Terminal" to do script "{script}"',
                "-e", 'tell application "Terminal" to activate']  # fmt: skip
    if osproc.WINDOWS:
        if shutil.which("wt", path=env.get("PATH")):
            return ["wt", "new-tab", "--title", title, *command]
        return ["cmd.exe", "/c", "start", title, "cmd.exe", "/k", subprocess.list2cmdline(command)]
    for program, flags in _LINUX:
        if shutil.which(program, path=env.get("PATH")):
            return [program, *flags, *command]
    raise UsageError(
        "no terminal emulator was found",
        hint="set NVWB_TERMINAL to yours (e.g. NVWB_TERMINAL=kitty), or run the command in "
        f"one yourself: {shlex.join(command)}",
    )


def open_terminal(paths: Paths, env: Mapping[str, str], context: str, project: Path) -> list[str]:
    """Start the user's terminal on ``nvwb attach``; the command line it ran."""
    argv = terminal_argv(attach_command(paths, context, project), env)
    try:
        subprocess.Popen(argv, env=dict(env), cwd=str(project), **osproc.detached_popen_kwargs())
    except OSError as exc:
        raise UsageError(
            f"cannot start the terminal {argv[0]}: {exc.strerror or exc}",
            hint="set NVWB_TERMINAL to the terminal emulator you use",
        ) from exc
    return argv
