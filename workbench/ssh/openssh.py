"""How the system ``ssh`` is made to trust exactly the host keys a paramiko connection trusts.

The OpenSSH paths (app forwards through one ControlMaster per context, sync's bulk transfers)
run ``ssh`` against the target a paramiko ``SshConnection`` has already verified. They never ask
and never pin: ``StrictHostKeyChecking=yes`` with the known_hosts files that the connection's
``KnownHosts`` names for OpenSSH (``KnownHosts.openssh_files``), nothing else: not the system's
global file, not ``~/.ssh/config`` (callers pass ``-F /dev/null``), and no key updates written.
"""

from __future__ import annotations

import shlex

from workbench.ssh.config import SshTarget
from workbench.ssh.knownhosts import KnownHosts


def openssh_host_key_name(target: SshTarget) -> str:
    """The name ``ssh`` looks a host key up under: the ``HostKeyAlias`` as is, else what
    paramiko uses (``host`` on port 22, ``[host]:port`` otherwise)."""
    return target.host_key_alias or target.known_hosts_name


def trust_options(target: SshTarget, known_hosts: KnownHosts) -> list[str]:
    """``-o`` options for ``ssh`` to ``target``: our known hosts only, checked strictly."""
    files = known_hosts.openssh_files(openssh_host_key_name(target))
    options = [
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UserKnownHostsFile=" + " ".join(shlex.quote(str(f)) for f in files),
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "UpdateHostKeys=no",
        "-o", "CheckHostIP=no",
    ]  # fmt: skip
    if target.host_key_alias:
        options += ["-o", f"HostKeyAlias={target.host_key_alias}"]
    return options
