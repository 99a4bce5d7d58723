"""``nvwb build|open|close|start|stop|logs``, ``list apps``: run a project on the current context.

``open``, ``close``, ``start APP``, ``stop APP`` and ``list apps`` ask the workbench service
(started on demand), which holds the context's lease, its SSH connection and the app forwards,
so a URL printed by ``nvwb start`` keeps working after the command exits. ``build`` and ``logs``
need nothing to outlive them: they go through a running service that holds a connection to the
context (no login of their own), else connect to the context (``-c``, else the current one)
themselves. The project is ``-p`` or the folder holding the cwd.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import ContextError, HostKeyRejected, WorkbenchError
from workbench.registry import Context, Registry, record_host_key
from workbench.service.client import ServiceClient, ServiceGone, ServiceUnavailable
from workbench.service.messages import (
    AppLog,
    AppRow,
    BuildLineEvent,
    BuiltImage,
    Event,
    ProgressEvent,
    ProjectEvent,
    StateEvent,
    SyncEvent,
)

if TYPE_CHECKING:
    # docker-py and pydantic cost most of a second to import: the commands that go through the
    # service never load them; build and logs, which talk to the engine, import them when run.
    from workbench.container.builder import BuildProgress
    from workbench.container.context_runtime import ContextRuntime
    from workbench.container.session import ProjectSession
    from workbench.projects import Project

T = TypeVar("T")

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
    """``nvwb build [--full-build]``: the project's image, built only if its inputs changed.

    On a remote context the service holds a connection to (a project open there), the service
    builds over it: no login of its own. Otherwise this command connects itself.
    """
    project = _project(inv)
    full_build = bool(getattr(inv.args, "full_build", False))
    context = _context(inv)
    data = _over_the_service(
        inv,
        context,
        project,
        lambda client: client.build_project(str(project.path), context.name, full_build=full_build),
    )
    if data is None:
        with _session(inv, project) as session:
            display = _ProgressDisplay(inv.stderr)
            outcome = session.build(full_build=full_build, on_progress=display.update)
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
        f"Built {data['image']} in {data['seconds']:.1f} s (log: {data['log']})"
        if data["built"]
        else f"{data['image']} is up to date; nothing to build."
    )
    return Result(data=data, message=message)


def open_project(inv: Invocation) -> Result:
    """``nvwb open [PROJECT]``: through the service, held for the calling shell until ``close``.

    The service starts the context if needed (a lease for the shell), builds if the inputs
    changed, syncs the files with a remote (first contact: nothing overwritten, ignored files
    stay here) and starts the container; its events are the progress.
    """
    project = _project(inv)
    context = _context(inv)
    pid = _holder_pid(inv)
    with _service(inv) as client:
        display = _ServiceProgress(inv, context.name, project)
        client.subscribe(display.event)
        opened = _trusting_host_key(
            inv,
            context,
            lambda: _again_after_restart(
                inv,
                client,
                lambda c: c.open_project(
                    str(project.path),
                    context.name,
                    holder_pid=pid,
                    full_build=bool(getattr(inv.args, "full_build", False)),
                ),
            ),
        )
        display.done()
    for warning in opened.warnings:
        inv.stderr.write(f"warning: {warning}\n")
    data = opened.to_wire()
    del data["lease"]
    data["held_by"] = opened.lease.holder_text
    return Result(
        data=data,
        message=f"Opened {project.name} on {context.name}: container {opened.container} is "
        f"running; held for shell {pid} until 'nvwb close' or that shell exits.",
    )


def close_project(inv: Invocation) -> Result:
    """``nvwb close [PROJECT]``: apps and container stopped, forwards closed, the lease released."""
    project = _project(inv)
    context = _context(inv)
    with _service(inv) as client:
        client.subscribe(_ServiceProgress(inv, context.name, project).event)
        closed = client.close_project(str(project.path), context.name)
    text = (
        f"Closed {project.name} on {context.name}."
        if closed.closed
        else f"{project.name} was not open on {context.name}."
    )
    return Result(data=closed.to_wire(), message=text)


def start_app(inv: Invocation) -> Result:
    """``nvwb start APP [--no-browser] [--port N]``: started and forwarded by the service.

    Returns once the app is healthy; the service holds the forward, so the URL keeps working
    after this command exits, until ``nvwb stop APP``, ``nvwb close`` or the context stops.
    """
    name = str(inv.args.app)
    local_port = int(getattr(inv.args, "port", None) or 0)
    project = _project(inv)
    context = _context(inv)
    pid = _holder_pid(inv)
    with _service(inv) as client:
        display = _ServiceProgress(inv, context.name, project)
        client.subscribe(display.event)
        started = _trusting_host_key(
            inv,
            context,
            lambda: _again_after_restart(
                inv,
                client,
                lambda c: c.start_app(
                    str(project.path), context.name, name, holder_pid=pid, local_port=local_port
                ),
            ),
        )
        display.done()
    url = started.url
    message = f"{name} is running" + (f" at {url}" if url else ".")
    if started.user_msg:
        message += f"\n{started.user_msg}"
    if url and not getattr(inv.args, "no_browser", False):
        _open_browser(url)
    data = started.to_wire()
    del data["user_msg"]  # said in the message; the JSON keeps what a script acts on
    return Result(data=data, message=message)


def stop_app(inv: Invocation) -> Result:
    """``nvwb stop APP``: its stop command, its processes ended, its forward closed, log kept."""
    name = str(inv.args.app)
    project = _project(inv)
    context = _context(inv)
    with _service(inv) as client:
        stopped = client.stop_app(str(project.path), context.name, name)
    return Result(data=stopped.to_wire(), message=f"Stopped {name} (log kept at {stopped.log}).")


def app_logs(inv: Invocation) -> Result:
    """``nvwb logs APP [--tail N]``: the app's output, live or as kept after it stopped.

    Over the service's connection when it holds one to the context, else a login of its own.
    """
    name = str(inv.args.app)
    tail = getattr(inv.args, "tail", None)
    project = _project(inv)
    context = _context(inv)
    data = _over_the_service(
        inv,
        context,
        project,
        lambda client: client.app_logs(
            str(project.path), context.name, name, tail=int(tail) if tail else None
        ),
    )
    if data is not None:
        text = str(data["log"])
    else:
        with _session(inv, project) as session:
            text = session.app_logs(name, tail)
    if inv.output == "table":
        inv.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        return Result()
    return Result(data={"app": name, "log": text})


def list_apps(inv: Invocation) -> Result:
    """``nvwb list apps``: each app of the project with its state and URL on the current context.

    Asked of the service, which holds the forwards behind remote URLs. A context that cannot be
    reached still lists the spec's apps, with their state unknown.
    """
    project = _project(inv)
    context = _context(inv)
    try:
        with _service(inv) as client:
            rows = _trusting_host_key(
                inv, context, lambda: client.project_status(str(project.path), context.name)
            ).apps
    except ContextError as exc:
        # The spec alone still says which apps there are; the context's part is unknown.
        inv.stderr.write(f"warning: {exc.message}; app states are unknown\n")
        from workbench.spec import SpecDocument

        rows = tuple(
            AppRow.of_spec(app, "unknown") for app in SpecDocument.load(project.spec_path).apps()
        )
    return Result(data=[row.to_wire() for row in rows], columns=_APP_COLUMNS)


# -- connection and selection ------------------------------------------------------------------


def _project(inv: Invocation) -> Project:
    chosen = getattr(inv.args, "project_name", None)
    return inv.find_project(str(chosen)) if chosen else inv.project()


def _context(inv: Invocation) -> Context:
    return Registry.load(inv.paths).get(inv.context_name())


def _connect(inv: Invocation) -> ContextRuntime:
    from workbench.container.context_runtime import open_runtime

    context = _context(inv)
    ask = None
    if context.is_remote and not context.accepted_host_key and inv.interactive:
        from workbench.ssh import PromptPolicy

        ask = PromptPolicy(lambda host, fp: _ask_host_key(inv, host, fp))

    def record_pin(offered: str) -> None:
        record_host_key(inv.paths, context.name, offered)

    return open_runtime(
        context,
        env=inv.env,
        ask=ask,
        record_pin=record_pin,
        passphrase_provider=_passphrase_provider(inv, context),
    )


@contextmanager
def _session(inv: Invocation, project: Project) -> Iterator[ProjectSession]:
    from workbench.container.session import ProjectSession

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


# -- the service ------------------------------------------------------------------------------


def _service(inv: Invocation) -> ServiceClient:
    return ServiceClient.connect(inv.paths, inv.env)


def _over_the_service(
    inv: Invocation,
    context: Context,
    project: Project,
    call: Callable[[ServiceClient], BuiltImage | AppLog],
) -> dict[str, Any] | None:
    """``call`` done by a running service over the connection it holds to ``context`` (no
    login here); None when no service runs (none is started for this), it holds no connection
    there, or the context is this machine (nothing to log in to)."""
    if not context.is_remote:
        return None
    try:
        client = ServiceClient.connect(inv.paths, inv.env, spawn=False)
    except ServiceUnavailable:
        return None
    with client:
        display = _ServiceProgress(inv, context.name, project)
        client.subscribe(display.event)
        try:
            answer = call(client)
        except ServiceGone:
            return None  # it went away meanwhile: connect here instead
        except WorkbenchError as exc:
            if "no method" in exc.message:
                return None  # a service from before this method: connect here instead
            raise
        finally:
            display.done()
    if not answer.connected:
        return None
    data = answer.to_wire()
    del data["connected"]
    return data


def _again_after_restart(
    inv: Invocation, client: ServiceClient, call: Callable[[ServiceClient], T]
) -> T:
    """``call(client)``; if the service dies under it, once more on a new one.

    The new service kept the shell's lease and the project it holds (the lease book), so
    ``open`` and ``start`` carry on where they were: both are idempotent.
    """
    try:
        return call(client)
    except ServiceGone as exc:
        inv.stderr.write(f"{exc}; trying again on a new Workbench service\n")
        with client.reconnect() as again:
            return call(again)


def _holder_pid(inv: Invocation) -> int:
    from workbench.cli.commands.service import _holder_pid as shell_pid

    return shell_pid(inv)


def _trusting_host_key(inv: Invocation, context: Context, call: Callable[[], T]) -> T:
    """``call()``; an unknown host key is asked about here (the service cannot ask), then again.

    A yes pins the key into the context (as ``--accept-host-key`` would); a changed key is
    never offered, only refused.
    """
    try:
        return call()
    except HostKeyRejected as exc:
        if exc.pinned or not inv.interactive or not _ask_host_key(inv, exc.host, exc.offered):
            raise
        offered = exc.offered
    with Registry.locked(inv.paths) as registry:
        registry.update(context.name, accepted_host_key=offered)
    return call()


def _open_browser(url: str) -> None:
    import webbrowser

    with contextlib.suppress(webbrowser.Error):
        webbrowser.open(url)


# -- progress ----------------------------------------------------------------------------------

_STAGES = {
    "image": "Checking the image",
    "files": "Syncing the project files",
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

    def stage(self, text: str, *, dots: bool = True) -> None:
        self._clear()
        self.out.write(f"{text}...\n" if dots else f"{text}\n")
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


class _ServiceProgress:
    """The service's events for one project on one context, shown on stderr as they come.

    The context's own steps (starting the machine, waiting for SSH, the agent) as lines, the
    project's stages as lines, build log lines as the progress bar or one line per step.
    """

    def __init__(self, inv: Invocation, context: str, project: Project) -> None:
        self.context = context
        self.project_path = str(project.path)
        self.quiet = inv.output != "table"
        self.display = _ProgressDisplay(inv.stderr)
        self._lock = threading.Lock()
        self._done = False
        self._sync_bar: Any = None

    def event(self, event: Event) -> None:
        if self.quiet or event.context != self.context:
            return
        with self._lock:
            if self._done:
                return  # a late event must not draw over the command's own answer
            if isinstance(event, ProgressEvent):
                self.display.stage(f"{self.context}: {event.message}", dots=False)
            elif isinstance(event, StateEvent) and event.state in ("starting", "error"):
                why = f" ({event.message})" if event.message else ""
                self.display.stage(f"{self.context}: {event.state}{why}", dots=False)
            elif not isinstance(event, ProjectEvent | SyncEvent | BuildLineEvent):
                return
            elif event.project_path != self.project_path:
                return  # another project, maybe of the same name
            elif isinstance(event, ProjectEvent):
                text = _STAGES.get(event.stage) if event.stage else None
                said = event.message
                self.display.stage(text or said[:1].upper() + said[1:], dots=text is not None)
            elif isinstance(event, SyncEvent):
                if event.kind == "progress":
                    self._sync_progress(event.data)
            else:
                from workbench.container.builder import BuildProgress

                docker_step = event.docker_step
                self.display.update(
                    BuildProgress(
                        step=event.step,
                        step_number=event.step_number,
                        step_count=event.step_count,
                        line=event.line,
                        docker_step=(docker_step[0], docker_step[1])
                        if docker_step and len(docker_step) == 2
                        else None,
                    )
                )

    def _sync_progress(self, data: dict[str, Any]) -> None:
        """The first sync's progress (the open's files stage): a bar on a terminal, one line
        when it is done elsewhere."""
        if not data.get("first"):
            return
        if self.display.tty:
            from workbench.cli.commands.sync import ProgressBar

            if self._sync_bar is None:
                self._sync_bar = ProgressBar(self.display.out)
            self._sync_bar("progress", data)
            return
        files, done = int(data.get("files") or 0), int(data.get("done_files") or 0)
        if files and done >= files:
            size = int(data.get("done_bytes") or 0) / 1e6
            self.display.out.write(f"  {done} files ({size:.1f} MB) brought in step\n")
            self.display.out.flush()

    def done(self) -> None:
        with self._lock:
            self._done = True
            self.display.done()
