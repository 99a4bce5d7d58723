"""The one way to reach a context over SSH: its endpoint, its host key trust, a connection.

The service's link, the container runtime and the app's connection check all connect here, so a
context's host keys are trusted the same way wherever it is reached. The trust comes from the
kind (``Kind.trust``) and the context's ``accepted_host_key``:

- a set ``accepted_host_key`` is the one key trusted for an address not yet pinned;
- ``KNOWN_HOSTS``: keys pinned by address in Workbench's known_hosts (the user's is read too);
  an unknown key goes to ``ask`` (a person, where one can be asked) and is pinned there on a
  yes; without ``ask`` (the service) it is refused;
- ``PER_INSTANCE``: never pinned by address; the first key is recorded into the context through
  ``record_pin`` (after ``ask``, where a person can be asked); without ``record_pin`` an unknown
  key is refused (``workbench.kinds.trust``).

A key that differs from the one pinned is always refused, whatever is passed here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from workbench.errors import ContextError
from workbench.kinds.base import Endpoint, HostKeyTrust
from workbench.kinds.registry import kind_named, provider_for
from workbench.paths import Paths
from workbench.ssh import (
    AcceptFingerprint,
    ConnectOptions,
    HostKeyPolicy,
    KnownHosts,
    PassphraseProvider,
    RejectUnknown,
    SshConnection,
    SshTarget,
)
from workbench.ssh.config import resolve_target

if TYPE_CHECKING:
    from workbench.registry import Context

RecordPin = Callable[[str], None]


def endpoint_of(context: Context, env: Mapping[str, str]) -> Endpoint:
    """Where the context's SSH server is: its own fields where they say (``static_endpoint``),
    else what its provider says now; the context's user and key fill what the provider leaves."""
    kind = kind_named(context.kind)
    if not kind.remote:
        raise ContextError(
            f"context '{context.name}' is this machine: it is not reached over SSH",
            context=context.name,
        )
    found = kind.static_endpoint(context) or provider_for(context, env).ssh_endpoint()
    if found is None:
        raise ContextError(
            f"context '{context.name}' has no SSH address yet",
            context=context.name,
            hint=f"start it first ('nvwb start context {context.name}' or from the app)",
        )
    return Endpoint(
        found.hostname,
        found.port,
        found.username or context.ssh_username,
        found.key_path or context.ssh_key_path,
        found.jump,
    )


def trust(
    context: Context,
    env: Mapping[str, str],
    *,
    ask: HostKeyPolicy | None = None,
    record_pin: RecordPin | None = None,
) -> tuple[HostKeyPolicy, KnownHosts]:
    """The host key policy and known hosts a connection to ``context`` uses (see the module)."""
    accepted = context.accepted_host_key
    if kind_named(context.kind).trust is HostKeyTrust.PER_INSTANCE:
        from workbench.kinds.trust import NoAddressPins, PinOnFirstUse, openssh_pin_file

        pins = NoAddressPins(openssh_pin_file(Paths.from_env(env), context.name))
        if accepted:
            return AcceptFingerprint(accepted), pins
        if record_pin is None:
            return RejectUnknown(), pins
        return PinOnFirstUse(record_pin, ask), pins
    known = KnownHosts.for_user(env)
    if accepted:
        return AcceptFingerprint(accepted), known
    return ask or RejectUnknown(), known


def connect(
    context: Context,
    env: Mapping[str, str],
    *,
    endpoint: Endpoint | None = None,
    ask: HostKeyPolicy | None = None,
    record_pin: RecordPin | None = None,
    passphrase_provider: PassphraseProvider | None = None,
    options: ConnectOptions | None = None,
) -> SshConnection:
    """A connected ``SshConnection`` to ``context`` (at ``endpoint``, else ``endpoint_of``).

    ``endpoint.hostname`` may be an alias from ``~/.ssh/config``; values given here win over it.
    """
    endpoint = endpoint or endpoint_of(context, env)
    target = _target(endpoint, env)
    policy, known_hosts = trust(context, env, ask=ask, record_pin=record_pin)
    connection = SshConnection(
        target,
        policy,
        known_hosts,
        passphrase_provider,
        options=options,
        context=context.name,
        env=env,
    )
    try:
        connection.connect()
    except BaseException:
        connection.close()
        raise
    return connection


def _target(endpoint: Endpoint, env: Mapping[str, str]) -> SshTarget:
    """``endpoint`` resolved against ``~/.ssh/config``; one behind a ``jump`` is dialled from
    the jump host (resolved the same way), the system ``ssh`` told so by ``-J``."""
    jump = _target(endpoint.jump, env) if endpoint.jump is not None else None
    target = resolve_target(
        endpoint.hostname,
        port=endpoint.port,
        user=endpoint.username,
        key_paths=[endpoint.key_path] if endpoint.key_path else None,
        proxy_jump=f"{jump.user}@{jump.host}:{jump.port}" if jump is not None else None,
        env=env,
    )
    return replace(target, jump=jump) if jump is not None else target
