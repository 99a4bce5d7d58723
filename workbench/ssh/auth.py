"""User authentication on an SSH transport: ssh-agent keys, then key files, as OpenSSH orders them.

Key files are the target's IdentityFiles or, when it names none, OpenSSH's default identities.
Encrypted keys get their passphrase from a ``PassphraseProvider`` the caller supplies (the service
looks in the keyring, the CLI may prompt); this module never stores one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import paramiko

from workbench.errors import ContextError
from workbench.ssh.config import SshTarget
from workbench.ssh.hostkeys import fingerprint
from workbench.ssh.keys import KeySkipped, PassphraseProvider, load_private_key

logger = logging.getLogger(__name__)

DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")


def identity_files(target: SshTarget, home: Path, *, look_for_keys: bool) -> list[Path]:
    if target.key_paths:
        return list(target.key_paths)
    if not look_for_keys:
        return []
    return [home / ".ssh" / name for name in DEFAULT_IDENTITIES if (home / ".ssh" / name).exists()]


def authenticate(
    transport: paramiko.Transport,
    target: SshTarget,
    *,
    home: Path,
    passphrase_provider: PassphraseProvider | None,
    use_agent: bool,
    look_for_keys: bool,
    context: str | None = None,
) -> None:
    """Authenticate as ``target.user`` or raise ``ContextError`` saying what was tried."""
    tried: list[str] = []
    if use_agent:
        agent = paramiko.Agent()
        try:
            for agent_key in agent.get_keys():
                label = f"agent key {fingerprint(agent_key)}"
                if _offer(transport, target, agent_key, context):
                    logger.info("authenticated to %s with %s", target.display(), label)
                    return
                tried.append(f"{label}: refused")
        finally:
            agent.close()
    for path in identity_files(target, home, look_for_keys=look_for_keys):
        try:
            key = load_private_key(path, passphrase_provider)
        except KeySkipped as skipped:
            tried.append(str(skipped))
            continue
        if _offer(transport, target, key, context):
            logger.info("authenticated to %s with %s", target.display(), path)
            return
        tried.append(f"{path}: refused")
    summary = "; ".join(tried) if tried else "no keys (no agent keys, no key files)"
    raise ContextError(
        f"authentication to {target.display()} as {target.user} failed: {summary}",
        context=context,
        hint=f"add your public key to ~{target.user}/.ssh/authorized_keys on the host, load it "
        "into ssh-agent, or set the context's key file",
    )


def _offer(
    transport: paramiko.Transport, target: SshTarget, key: paramiko.PKey, context: str | None
) -> bool:
    try:
        transport.auth_publickey(target.user, key)
    except paramiko.BadAuthenticationType as exc:
        raise ContextError(
            f"{target.display()} does not accept public keys (it allows: "
            f"{', '.join(exc.allowed_types) or 'nothing'})",
            context=context,
            hint="enable PubkeyAuthentication on the host; passwords are not supported",
        ) from exc
    except paramiko.AuthenticationException:
        return False
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise ContextError(
            f"connection to {target.display()} dropped during authentication: {exc}",
            context=context,
            hint="the host may limit authentication attempts (MaxAuthTries); "
            "name one key file for this context",
        ) from exc
    return transport.is_authenticated()
