"""A spec app as a process in the project container: start, health check, stop, URL, log.

Commands run as AI Workbench runs them: ``bash -c`` in the container, with ``PROXY_PREFIX`` set,
and with the spec's ``\\$`` escapes undone (AI Workbench passes commands through one level of
double-quoted shell, so specs write ``\\$PROXY_PREFIX`` to reach the inner shell).

The app is started by one short ``docker exec`` that puts it in the background: that exec's shell
leads a process group which the app and its children inherit, and it writes the wrapper's pid and
that group id (later the exit status) into ``/tmp/.workbench-apps`` inside the container, so the
files are consistent by the time the exec returns. Stopping runs ``stop_command`` and then
signals the whole group. Each health poll is one exec that also says whether the app still runs:
start-to-healthy costs two round trips to the engine when the app is quick. The app's output goes
to a log there too, and is copied into the project's state dir on this machine when the app
stops (0600: it may hold a token), so it is kept after the container goes.

The project's secrets (``secrets``) are given to the app's own commands (start, stop, health
check, URL) as the environment of their ``docker exec``: never to the container itself, whose
environment ``docker inspect`` shows.

An app's name comes from a spec, possibly a stranger's, and may hold spaces (``Visual Studio
Code``): its files, here and in the container, are named by ``names.app_file_stem`` (never a
path), and every path put into a shell command is quoted.

``PROXY_PREFIX`` is ``/projects/<project>/applications/<app>`` for apps whose proxy does not trim
the prefix (they serve under it, and their URL includes it) and empty for those that do: there is
no proxy in front of a forwarded port to trim it, so such apps serve at ``/``.
"""

from __future__ import annotations

import logging
import re
import shlex
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

from workbench.container.build_context import PROJECT_DIR
from workbench.errors import ContextError, WorkbenchError
from workbench.names import app_file_stem
from workbench.paths import PRIVATE_FILE, atomic_write_text
from workbench.spec.models import AppSpec

log = logging.getLogger(__name__)

APP_DIR = "/tmp/.workbench-apps"
DEFAULT_TIMEOUT_S = 60
POLL_INTERVAL_S = 0.1
STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 20
_DQ_ESCAPE = re.compile(r"\\([$`\"\\\n])")


class AppFailed(WorkbenchError):
    """An app that did not start, or did not become healthy in time; its log is kept."""

    exit_code = 12
    code = "app_failed"

    def __init__(
        self, app: str, reason: str, *, tail: list[str], log_path: Path | None, hint: str
    ) -> None:
        lines = [f"app '{app}' {reason}"]
        if tail:
            lines.append("last lines of its output:")
            lines += [f"  | {line}" for line in tail]
        if log_path is not None:
            lines.append(f"log kept at {log_path}")
        super().__init__("\n".join(lines), hint=hint)
        self.app = app
        self.reason = reason
        self.tail = tail
        self.log_path = log_path

    def details(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "reason": self.reason,
            "tail": self.tail,
            "log_path": str(self.log_path) if self.log_path else None,
        }


def unescape(command: str) -> str:
    """Undo one level of double-quoted shell escaping, as AI Workbench's runner does."""
    return _DQ_ESCAPE.sub(lambda m: "" if m.group(1) == "\n" else m.group(1), command)


def proxy_prefix(project: str, app: AppSpec) -> str:
    options = app.webapp_options
    if app.class_ != "webapp" or options is None or options.proxy.trim_prefix:
        return ""
    return f"/projects/{project}/applications/{app.name}"


def app_port(app: AppSpec) -> int | None:
    options = app.webapp_options
    if app.class_ == "webapp" and options is not None and options.port.strip().isdigit():
        return int(options.port)
    return None


def local_url(raw_url: str, authority: str, prefix: str) -> str:
    """``raw_url`` (as the app or spec names it) pointed at ``authority`` on this machine.

    The path keeps the proxy prefix the app serves under; a bare ``http://localhost:PORT`` gets it.
    """
    parts = urllib.parse.urlsplit(raw_url.strip() or "http://localhost/")
    path = parts.path or "/"
    if prefix and not path.startswith(prefix):
        path = prefix.rstrip("/") + "/" + path.lstrip("/")
    return urllib.parse.urlunsplit(
        (parts.scheme or "http", authority, path, parts.query, parts.fragment)
    )


@dataclass(frozen=True)
class AppStatus:
    name: str
    state: str  # running | stopped | exited
    pid: int | None = None
    exit_status: int | None = None
    group: int | None = None  # the process group the app runs in


_STATE_MARK = "@@workbench-app-state"


class AppRunner:
    """One app of one project container. Cheap to make; all state lives in the container."""

    def __init__(
        self,
        container: Any,
        project: str,
        app: AppSpec,
        log_dir: Path,
        *,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.container = container
        self.project = project
        self.app = app
        self.log_dir = log_dir
        self.prefix = proxy_prefix(project, app)
        self._secrets = dict(secrets or {})
        self._stem = app_file_stem(app.name)  # refuses a name that is not an app name
        self._files = f"{APP_DIR}/{self._stem}"

    @property
    def name(self) -> str:
        return self.app.name

    @property
    def kept_log(self) -> Path:
        return self.log_dir / f"{self._stem}.log"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(
        self, *, timeout: float | None = None, on_wait: Callable[[float], None] | None = None
    ) -> AppStatus:
        """Start the app unless it runs, then wait until its health check passes.

        On failure the app is stopped, its log copied to :attr:`kept_log`, and
        :class:`AppFailed` raised with the tail of its output.
        """
        if not self.app.start_command.strip():
            raise WorkbenchError(
                f"app '{self.name}' has no start_command",
                hint="set one with 'nvwb create app' or in .project/spec.yaml",
            )
        self._launch()
        limit = float(
            timeout if timeout is not None else self.app.timeout_seconds or DEFAULT_TIMEOUT_S
        )
        return self._wait_healthy(limit, on_wait)

    def stop(self) -> AppStatus:
        """Run ``stop_command`` (if any), then end the app's process group; keep its log."""
        status = self.status()
        if status.state == "running" and status.group is not None:
            if self.app.stop_command.strip():
                result = self._exec(unescape(self.app.stop_command), timeout=STOP_GRACE_S * 2)
                if result[0] != 0:
                    log.info(
                        "stop_command of %s exited %s: %s",
                        self.name,
                        result[0],
                        result[1].strip()[-200:],
                    )
            self._signal_group(status.group)
        self.keep_log()
        return self.status()

    def status(self) -> AppStatus:
        return self._poll("")[0]

    def url(self, authority: str) -> str | None:
        """The app's URL with ``authority`` (``127.0.0.1:PORT`` on this machine), for web apps."""
        options = self.app.webapp_options
        if self.app.class_ != "webapp" or options is None:
            return None
        raw = options.url
        if options.url_command.strip():
            code, out = self._exec(unescape(options.url_command), timeout=30)
            lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
            if code == 0 and lines:
                raw = lines[0]
            else:
                log.warning("url_command of %s gave nothing (exit %s)", self.name, code)
        if not raw:
            port = app_port(self.app)
            raw = f"http://localhost:{port}/" if port else "http://localhost/"
        return local_url(raw, authority, self.prefix)

    def logs(self, tail: int | None = None) -> str:
        """The app's output: live from the container while it has one, else the kept copy."""
        count = f"-n {int(tail)}" if tail else "-n +1"
        code, out = self._exec(f"tail {count} {self._file('log')}", internal=True)
        if code == 0:
            return out
        if self.kept_log.is_file():
            text = self.kept_log.read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.splitlines()[-tail:]) + "\n" if tail else text
        raise WorkbenchError(
            f"app '{self.name}' has no log yet", hint=f"start it with 'nvwb start {self.name}'"
        )

    def keep_log(self) -> Path | None:
        """Copy the app's log out of the container into the state dir (kept after it goes)."""
        code, out = self._exec(f"cat {self._file('log')}", internal=True)
        if code != 0:
            return self.kept_log if self.kept_log.exists() else None
        atomic_write_text(self.kept_log, out, mode=PRIVATE_FILE, durable=False)
        return self.kept_log

    # -- internals ---------------------------------------------------------------------------

    def _launch(self) -> None:
        """Start the app in the background unless it runs; returns once its files are written."""
        pid, exit_file, log_file = self._file("pid"), self._file("exit"), self._file("log")
        wrapper = (
            f"mkdir -p {APP_DIR} && cd {PROJECT_DIR} 2>/dev/null; "
            f'if [ -s {pid} ] && kill -0 -- "$(cut -d" " -f1 {pid})" 2>/dev/null; '
            "then exit 0; fi; "
            f"rm -f {exit_file}; : > {log_file}; "
            "cmd=$WORKBENCH_APP_COMMAND; unset WORKBENCH_APP_COMMAND; "
            f'( bash -c "$cmd" >> {log_file} 2>&1 < /dev/null; echo $? > {exit_file} ) '
            ">/dev/null 2>&1 & "
            f'echo "$! $$" > {pid}'
        )
        try:
            result = self.container.exec_run(
                ["bash", "-c", wrapper],
                environment={
                    **self._secrets,
                    "PROXY_PREFIX": self.prefix,
                    "WORKBENCH_APP_COMMAND": unescape(self.app.start_command),
                },
            )
        except docker.errors.APIError as exc:
            raise ContextError(f"cannot start app '{self.name}': {exc.explanation or exc}") from exc
        if result.exit_code not in (0, None):
            output = bytes(result.output or b"").decode("utf-8", "replace").strip()
            raise ContextError(f"cannot start app '{self.name}': {output or result.exit_code}")
        log.info("started app %s in %s", self.name, self.container.name)

    def _poll(self, check: str, timeout: float = 0) -> tuple[AppStatus, int, str]:
        """One exec: is the app running, and if so, does ``check`` pass?

        Returns the status, the check's exit status (0 when there is no check) and its output.
        """
        run_check = (
            f"timeout {max(1, int(timeout))} bash -c {shlex.quote(check)} 2>&1; rc=$?"
            if check
            else "rc=0"
        )
        script = (
            f"read pid group < {self._file('pid')} 2>/dev/null || "
            f"{{ echo {_STATE_MARK} stopped; exit 0; }}; "
            f'if kill -0 -- "$pid" 2>/dev/null; then {run_check}; '
            f'echo; echo {_STATE_MARK} running "$pid" "$group" "$rc"; '
            f'else echo {_STATE_MARK} exited "$pid" "$group" '
            f'"$(cat {self._file("exit")} 2>/dev/null)"; fi'
        )
        code, out = self._exec(script, internal=not check)
        lines = out.splitlines()
        marks = [ln for ln in lines if ln.startswith(_STATE_MARK)]
        output = "\n".join(ln for ln in lines if not ln.startswith(_STATE_MARK)).strip()
        words = marks[-1].split()[1:] if marks else []
        if code != 0 or not words or words[0] == "stopped":
            return AppStatus(self.name, "stopped"), 1, output
        numbers = [int(w) if w.lstrip("-").isdigit() else None for w in words[1:]] + [None] * 3
        pid, group, last = numbers[0], numbers[1], numbers[2]
        if words[0] == "running":
            return AppStatus(self.name, "running", pid, None, group), last or 0, output
        # No exit status: the wrapper itself was signalled, i.e. the app was stopped.
        state = "exited" if last is not None else "stopped"
        return AppStatus(self.name, state, pid, last, group), 1, output

    def _wait_healthy(self, limit: float, on_wait: Callable[[float], None] | None) -> AppStatus:
        check = unescape(self.app.health_check_command).strip()
        port = app_port(self.app)
        if not check and port is not None:
            # No check given: a web app is up once something accepts connections on its port.
            check = f"exec 3<>/dev/tcp/127.0.0.1/{port}"
        started = time.monotonic()
        last_output = ""
        while True:
            status, code, last_output = self._poll(check, timeout=max(5.0, limit))
            if status.state != "running":
                if not check and status.state == "exited" and status.exit_status == 0:
                    return status  # a process app that ran to its end
                self.keep_log()
                raise AppFailed(
                    self.name,
                    f"exited with status {status.exit_status} before it was healthy",
                    tail=self._tail(),
                    log_path=self.kept_log,
                    hint=f"its start_command failed; 'nvwb logs {self.name}' shows its output",
                )
            if code == 0:
                log.info("app %s healthy after %.2f s", self.name, time.monotonic() - started)
                return status
            elapsed = time.monotonic() - started
            if on_wait is not None:
                on_wait(elapsed)
            if elapsed >= limit:
                break
            time.sleep(POLL_INTERVAL_S)
        tail = self._tail()
        self.stop()
        said = last_output.strip().splitlines()[-1] if last_output.strip() else "nothing"
        raise AppFailed(
            self.name,
            f"did not pass its health check within {limit:g} s, so it was stopped "
            f"(the check `{check}` said: {said})",
            tail=tail,
            log_path=self.kept_log,
            hint="fix health_check_command, or raise timeout_seconds if the app is just slow to "
            "start ('nvwb logs " + self.name + "' shows its output)",
        )

    def _tail(self) -> list[str]:
        code, out = self._exec(f"tail -n {LOG_TAIL_LINES} {self._file('log')}", internal=True)
        return out.splitlines() if code == 0 else []

    def _file(self, suffix: str) -> str:
        """One of the app's files in the container, quoted for a shell command."""
        return shlex.quote(f"{self._files}.{suffix}")

    def _signal_group(self, group: int) -> None:
        group = int(group)
        self._exec(
            f"kill -TERM -- -{group} 2>/dev/null; "
            f"for i in $(seq {int(STOP_GRACE_S * 10)}); do "
            f"kill -0 -- -{group} 2>/dev/null || exit 0; sleep 0.1; done; "
            f"kill -KILL -- -{group} 2>/dev/null; exit 0",
            internal=True,
        )

    def _exec(
        self, command: str, *, timeout: float | None = None, internal: bool = False
    ) -> tuple[int, str]:
        """Run ``command`` with bash in the container; (exit status, stdout and stderr)."""
        script = (
            command if timeout is None else f"timeout {int(timeout)} bash -c {shlex.quote(command)}"
        )
        environment = None if internal else {**self._secrets, "PROXY_PREFIX": self.prefix}
        if self.container is None:
            return 125, ""  # no container: only the kept log is left to read
        try:
            result = self.container.exec_run(["bash", "-c", script], environment=environment)
        except docker.errors.NotFound as exc:
            raise WorkbenchError(
                f"the container of project '{self.project}' is gone",
                hint="open the project again ('nvwb open')",
            ) from exc
        except docker.errors.APIError as exc:
            if "is not running" in str(exc):
                return 125, ""
            raise
        output = bytes(result.output or b"").decode("utf-8", "replace")
        return int(result.exit_code if result.exit_code is not None else 1), output
