"""The one exception tree of Workbench, and the exit code each error maps to.

Every failure a user can cause or meet is a ``WorkbenchError``; library errors are wrapped at the
boundary with ``raise ... from exc``. The CLI's error funnel turns these into one clear line (or
``{"error": {...}}`` with ``-o json``) and the exit code documented in ``docs/cli.md``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class WorkbenchError(Exception):
    """Root of every error Workbench raises on purpose."""

    exit_code: ClassVar[int] = 1
    code: ClassVar[str] = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def details(self) -> dict[str, Any]:
        """Typed attributes beyond the message, for ``-o json`` and the app."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            data["hint"] = self.hint
        data.update({k: v for k, v in self.details().items() if v is not None})
        data["exit_code"] = self.exit_code
        return data

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(WorkbenchError):
    """The command line itself is wrong: unknown command, missing argument, bad flag value."""

    exit_code = 2
    code = "usage"


class InvalidValueError(WorkbenchError):
    """A value the user gave (a name, a port, a path) breaks a rule; ``field`` says which."""

    exit_code = 2
    code = "invalid_value"

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field
        self.reason = message

    def details(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason}


class SpecError(WorkbenchError):
    """A project spec that cannot be used: names the file, the line and the field."""

    exit_code = 3
    code = "spec"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
    ) -> None:
        where = ":".join(str(p) for p in (file, line) if p is not None)
        text = message
        if field:
            text = f"{field}: {text}"
        if expected:
            text = f"{text} (expected {expected})"
        if where:
            text = f"{where}: {text}"
        super().__init__(text)
        self.file = file
        self.line = line
        self.field = field
        self.expected = expected
        self.reason = message

    def details(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "expected": self.expected,
            "reason": self.reason,
        }


class NotFoundError(WorkbenchError):
    """A named thing (context, project, mount, app, package, variable) does not exist."""

    exit_code = 4
    code = "not_found"

    def __init__(self, what: str, name: str, *, hint: str | None = None) -> None:
        super().__init__(f"{what} '{name}' does not exist", hint=hint)
        self.what = what
        self.name = name

    def details(self) -> dict[str, Any]:
        return {"what": self.what, "name": self.name}


class AlreadyExistsError(WorkbenchError):
    """Creating something whose name is taken."""

    exit_code = 5
    code = "already_exists"

    def __init__(self, what: str, name: str, *, hint: str | None = None) -> None:
        super().__init__(f"{what} '{name}' already exists", hint=hint)
        self.what = what
        self.name = name

    def details(self) -> dict[str, Any]:
        return {"what": self.what, "name": self.name}


class ContextError(WorkbenchError):
    """A context could not be reached, started, stopped or used."""

    exit_code = 6
    code = "context"

    def __init__(
        self, message: str, *, context: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.context = context

    def details(self) -> dict[str, Any]:
        return {"context": self.context}


class HostKeyRejected(ContextError):
    """An SSH host key that is unknown (not yet accepted) or changed since it was pinned."""

    exit_code = 7
    code = "host_key"

    def __init__(
        self,
        message: str,
        *,
        host: str,
        offered: str,
        pinned: str | None = None,
        context: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, context=context, hint=hint)
        self.host = host
        self.offered = offered
        self.pinned = pinned

    def details(self) -> dict[str, Any]:
        return {
            **super().details(),
            "host": self.host,
            "offered": self.offered,
            "pinned": self.pinned,
        }


class CommandFailed(WorkbenchError):
    """An external command (provider template, build step, remote exec) exited non-zero."""

    exit_code = 8
    code = "command_failed"

    def __init__(
        self, command: str, exit_status: int, stderr: str = "", *, hint: str | None = None
    ) -> None:
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        message = f"command failed with exit code {exit_status}: {command}"
        if tail:
            message += f": {tail}"
        super().__init__(message, hint=hint)
        self.command = command
        self.exit_status = exit_status
        self.stderr = stderr

    def details(self) -> dict[str, Any]:
        return {"command": self.command, "exit_status": self.exit_status, "stderr": self.stderr}


class SecretStoreError(WorkbenchError):
    """The OS keyring is missing, locked or refused us."""

    exit_code = 9
    code = "secret_store"


class ConflictError(WorkbenchError):
    """An operation that would overwrite or lose user data and so was refused."""

    exit_code = 10
    code = "conflict"


class Cancelled(WorkbenchError):
    """The user said no (or gave no answer where one was needed)."""

    exit_code = 130
    code = "cancelled"
