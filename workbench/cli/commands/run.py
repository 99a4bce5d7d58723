"""``nvwb build|open|close|start|stop|logs``, ``list apps``: run a project on the current context.

Each command connects to the context (``-c``, else the current one), works on the project (``-p``
or the folder holding the cwd) and disconnects. On a remote context a web app's URL needs a
forward held by a long-lived process; until the workbench service holds forwards, ``nvwb start``
holds it in the foreground and says so, until Ctrl-C. The app itself keeps running after that.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result, render
from workbench.container.builder import BuildProgress
from workbench.container.forwards import open_forwards
from workbench.container.session import ProjectSession
from workbench.context_runtime import ContextRuntime, open_runtime
from workbench.errors import ContextError
from workbench.projects import Project
from workbench.registry import Context, Registry
from workbench.spec import AppSpec

_APP_COLUMNS = [
    ("NAME", "name"),
    ("CLASS", "class"),
    ("PORT", "port"),
    ("STATE", "state"),
    ("URL", "url"),
]
_BAR_WIDTH = 24


# -- commands ----------------------------------------------------------------------------------


def build(inv: Invocation) -> Result:
    """``nvwb build [--full-build]``: the project's image, built only if its inputs changed."""
    project = _project(inv)
    with _session(inv, project) as session:
        display = _ProgressDisplay(inv.stderr)
        outcome = session.build(
            full_build=bool(getattr(inv.args, "full_build", False)), on_progress=display.update
        )
        display.done()
    data = {
        "project": project.name,
        "context": session.runtime.name,
        "image": outcome.tag,
        "built": outcome.built,
        "seconds": round(outcome.seconds, 1),
        "log": str(outcome.log_path) if outcome.log_path else None,
    }
    message = (
        f"Built {outcome.tag} in {outcome.seconds:.1f} s (log: {outcome.log_path})"
        if outcome.built
        else f"{outcome.tag} is up to date; nothing to build."
    )
    return Result(data=data, message=message)


def open_project(inv: Invocation) -> Result:
    """``nvwb open [PROJECT]``: build if needed, copy the files to a remote, start the container."""
    project = _project(inv)
    with _session(inv, project) as session:
        display = _ProgressDisplay(inv.stderr)
        result = session.open(
            full_build=bool(getattr(inv.args, "full_build", False)),
            on_progress=display.update,
            on_stage=lambda stage: display.stage(_STAGES.get(stage, stage)),
        )
        display.done()
        for warning in result.warnings:
            inv.stderr.write(f"warning: {warning}\n")
    data = {
        "project": project.name,
        "context": session.runtime.name,
        "container": session.container_name,
        "image": result.image,
        "built": result.build.built,
        "state": "running",
        "files_copied": result.copy.files if result.copy else None,
        "warnings": result.warnings,
        "seconds": round(result.seconds, 1),
    }
    return Result(
        data=data,
        message=f"Opened {project.name} on {session.runtime.name}: "
        f"container {session.container_name} is running.",
    )


def close_project(inv: Invocation) -> Result:
    """``nvwb close [PROJECT]``: stop the apps (logs kept), stop and remove the container."""
    project = _project(inv)
    with _session(inv, project) as session:
        closed = session.close()
    data = {"project": project.name, "context": session.runtime.name, "closed": closed}
    text = (
        f"Closed {project.name} on {session.runtime.name}."
        if closed
        else f"{project.name} was not open on {session.runtime.name}."
    )
    return Result(data=data, message=text)


def start_app(inv: Invocation) -> Result:
    """``nvwb start APP [--no-browser] [--port N]``: start, wait until healthy, print the URL."""
    name = str(inv.args.app)
    local_port = int(getattr(inv.args, "port", None) or 0)
    project = _project(inv)
    runtime = _connect(inv)
    forwards = open_forwards(runtime.ssh, inv.paths.runtime_dir / "ssh")
    try:
        session = ProjectSession(runtime, project, inv.paths, inv.env)
        started = session.start_app(
            name,
            forwards,
            local_port=local_port,
            on_stage=lambda s: _say(inv.stderr, f"{_STAGES[s]}..."),
        )
        data = {
            "app": name,
            "project": project.name,
            "context": runtime.name,
            "state": started.status.state,
            "url": started.url,
            "seconds": round(started.seconds, 2),
        }
        message = f"{name} is running" + (f" at {started.url}" if started.url else ".")
        if started.user_msg:
            message += f"\n{started.user_msg}"
        if started.url and not getattr(inv.args, "no_browser", False):
            _open_browser(started.url)
        if started.url is None or runtime.ssh is None:
            return Result(data=data, message=message)
        # Remote: the URL lives as long as this process holds the forward.
        render(Result(data=data, message=message), inv.output, inv.stdout)
        inv.stdout.flush()
        with _recorded_url(inv, runtime.name, project.name, name, started.url):
            _hold(inv.stderr, started.url)
        return Result(
            data={"app": name, "forwarding": "stopped"},
            message=None if inv.output == "table" else "forwarding stopped",
        )
    finally:
        forwards.close_all()
        runtime.close()


def stop_app(inv: Invocation) -> Result:
    """``nvwb stop APP``: run its stop command, end its processes, keep its log."""
    name = str(inv.args.app)
    project = _project(inv)
    with _session(inv, project) as session:
        status = session.stop_app(name)
        kept = session.runner(name).kept_log
    return Result(
        data={"app": name, "state": status.state, "log": str(kept)},
        message=f"Stopped {name} (log kept at {kept}).",
    )


def app_logs(inv: Invocation) -> Result:
    """``nvwb logs APP [--tail N]``: the app's output, live or as kept after it stopped."""
    name = str(inv.args.app)
    tail = getattr(inv.args, "tail", None)
    project = _project(inv)
    with _session(inv, project) as session:
        session.app(name)  # a clear error for an unknown app
        container = session.container()
        if container is not None:
            text = session.runner(name, container).logs(tail)
        else:
            from workbench.container.apps import AppRunner

            text = AppRunner(None, project.name, session.app(name), session.app_log_dir).logs(tail)
    if inv.output == "table":
        inv.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        return Result()
    return Result(data={"app": name, "log": text})


def list_apps(inv: Invocation) -> Result:
    """``nvwb list apps``: each app of the project with its state and URL on the current context."""
    project = _project(inv)
    try:
        runtime = _connect(inv)
    except ContextError as exc:
        # The spec alone still says which apps there are; the context's part is unknown.
        inv.stderr.write(f"warning: {exc.message}; app states are unknown\n")
        from workbench.spec import SpecDocument

        rows = [_app_row(app, "unknown") for app in SpecDocument.load(project.spec_path).apps()]
        return Result(data=rows, columns=_APP_COLUMNS)
    try:
        session = ProjectSession(runtime, project, inv.paths, inv.env)
        container = session.container()
        rows = []
        for app in session.document.apps():
            row = _app_row(app, "closed")
            if container is not None:
                runner = session.runner(app.name, container)
                row["state"] = runner.status().state
                if row["state"] == "running":
                    row["url"] = _url_of(inv, session, runner, container)
            rows.append(row)
    finally:
        runtime.close()
    return Result(data=rows, columns=_APP_COLUMNS)


def _app_row(app: AppSpec, state: str) -> dict[str, Any]:
    port = app.webapp_options.port if app.webapp_options else ""
    return {
        "name": app.name,
        "type": app.type,
        "class": app.class_,
        "port": port or None,
        "state": state,
        "url": None,
    }


# -- connection and selection ------------------------------------------------------------------


def _project(inv: Invocation) -> Project:
    chosen = getattr(inv.args, "project_name", None)
    return inv.find_project(str(chosen)) if chosen else inv.project()


def _context(inv: Invocation) -> Context:
    return Registry.load(inv.paths).get(inv.context_name())


def _connect(inv: Invocation) -> ContextRuntime:
    context = _context(inv)
    policy = None
    if context.is_remote and not context.accepted_host_key and inv.interactive:
        from workbench.ssh import PromptPolicy

        policy = PromptPolicy(lambda host, fp: _ask_host_key(inv, host, fp))
    return open_runtime(
        context, env=inv.env, policy=policy, passphrase_provider=_passphrase_provider(inv, context)
    )


@contextmanager
def _session(inv: Invocation, project: Project) -> Iterator[ProjectSession]:
    runtime = _connect(inv)
    try:
        yield ProjectSession(runtime, project, inv.paths, inv.env)
    finally:
        runtime.close()


def _ask_host_key(inv: Invocation, host: str, fingerprint: str) -> bool:
    inv.stderr.write(
        f"The host key of {host} is not known yet: {fingerprint}\nTrust it and remember it? [y/N] "
    )
    inv.stderr.flush()
    return inv.stdin.readline().strip().lower() in ("y", "yes")


def _passphrase_provider(inv: Invocation, context: Context) -> Callable[[Path], str | None]:
    def provide(key_path: Path) -> str | None:
        from workbench.secrets import SecretStore, context_secret_key

        stored = SecretStore(env=inv.env).get(
            context_secret_key(context.name, "ssh_key_passphrase")
        )
        if stored is not None:
            return stored
        if not inv.stdin.isatty():
            return None
        return inv.read_secret(f"Passphrase for {key_path}: ")

    return provide


# -- URLs and forwards -------------------------------------------------------------------------


def _url_of(inv: Invocation, session: ProjectSession, runner: Any, container: Any) -> str | None:
    from workbench.container.apps import app_port
    from workbench.container.runtime import published_ports

    port = app_port(runner.app)
    if port is None:
        return None
    if session.runtime.is_remote:
        return _read_url(inv, session.runtime.name, session.name, runner.name)
    published = published_ports(container).get(port)
    return runner.url(f"127.0.0.1:{published}") if published else None


def _url_file(inv: Invocation, context: str, project: str, app: str) -> Path:
    return inv.paths.runtime_dir / "forwards" / context / project / f"{app}.json"


@contextmanager
def _recorded_url(
    inv: Invocation, context: str, project: str, app: str, url: str
) -> Iterator[None]:
    """Tell ``nvwb list apps`` in other processes the URL this process holds a forward for."""
    path = _url_file(inv, context, project, app)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _read_url(inv: Invocation, context: str, project: str, app: str) -> str | None:
    path = _url_file(inv, context, project, app)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        os.kill(int(data["pid"]), 0)  # the holder still runs
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(data["url"])


def _hold(err: TextIO, url: str) -> None:
    err.write(
        f"Forwarding {url} to the app on the remote context. Press Ctrl-C to stop "
        "forwarding (the app keeps running; 'nvwb stop APP' stops it).\n"
        "Once the workbench service holds forwards, this wait goes away.\n"
    )
    err.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        err.write("Stopped forwarding.\n")


def _open_browser(url: str) -> None:
    import webbrowser

    with contextlib.suppress(webbrowser.Error):
        webbrowser.open(url)


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


# -- progress ----------------------------------------------------------------------------------

_STAGES = {
    "image": "Checking the image",
    "files": "Copying the project files",
    "container": "Starting the container",
    "app": "Starting the app",
}


class _ProgressDisplay:
    """A one-line bar on a terminal; one line per build step when the output is a file or pipe."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._step: str | None = None
        self._drawn = False
        self._started = time.monotonic()

    def stage(self, text: str) -> None:
        self._clear()
        self.out.write(f"{text}...\n")
        self.out.flush()

    def update(self, progress: BuildProgress) -> None:
        if progress.step != self._step and progress.step is not None:
            self._step = progress.step
            if not self.tty:
                self.out.write(
                    f"  step {progress.step_number}/{progress.step_count}: {progress.step}\n"
                )
                self.out.flush()
        if self.tty:
            filled = int(progress.fraction * _BAR_WIDTH)
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            elapsed = time.monotonic() - self._started
            line = (
                f"\r[{bar}] {progress.step_number}/{progress.step_count} "
                f"{progress.step or ''} ({elapsed:.0f} s) {progress.line.strip()[:40]}"
            )
            self.out.write(line[:120].ljust(120))
            self.out.flush()
            self._drawn = True

    def done(self) -> None:
        self._clear()

    def _clear(self) -> None:
        if self._drawn:
            self.out.write("\r" + " " * 120 + "\r")
            self.out.flush()
            self._drawn = False
