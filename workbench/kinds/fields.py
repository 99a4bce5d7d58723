"""What each field of a context means, once: its flag, form label, help and number range.

A field means the same in every kind (``hostname`` is a host name whether an ``ssh`` or a
``command`` context holds it), so its presentation lives here and a kind only says which fields
it uses (``Kind.fields``). The CLI's context flags, the app's context form and the docs' kinds
table are all built from this table and the registered kinds; the value checks themselves are
the registry's (``workbench.registry``), the numbers' ranges ``workbench.values``'.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

from workbench import values
from workbench.kinds.base import FieldRule, Kind

DEFAULT_IDLE_STOP_COMMAND: Final = "sudo -n shutdown -h now"
"""What the agent's guard runs on the remote when nobody has used it for the idle timeout;
``-n`` makes sudo fail instead of hanging on a password prompt nobody will answer."""


@dataclass(frozen=True)
class FieldInfo:
    """How one field is shown and asked for: the form's label and hint, the CLI's flag."""

    name: str
    label: str
    help: str
    placeholder: str = ""
    flag: str = ""  # default: --the-name
    dest: str = ""  # argparse's attribute; default: the name
    metavar: str | None = None
    number: values.IntRange | values.FloatRange | values.TimeLimit | None = None
    form: bool = True  # shown in the app's form (where the kind uses it)
    unused: str = ""  # why, when a kind does not take it ("does not apply to ...: why")

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def attribute(self) -> str:
        return self.dest or self.name


# In the order the form shows them and the CLI lists its flags.
CATALOGUE: Final[tuple[FieldInfo, ...]] = (
    FieldInfo("description", "Description", "what this context is for", "what this machine is for"),
    FieldInfo(
        "hostname",
        "Host",
        "SSH host name or ~/.ssh/config alias",
        "gpu-box.example.com, 10.0.0.7 or an ~/.ssh/config alias",
        dest="hostname_flag",  # `create context NAME [HOSTNAME]` has a positional of that name
        metavar="HOSTNAME",
    ),
    FieldInfo(
        "ssh_username",
        "SSH user",
        "user to log in as",
        "defaults to ~/.ssh/config, then your user name",
    ),
    FieldInfo("ssh_port", "SSH port", "SSH port (default 22)", "22", number=values.PORT),
    FieldInfo("ssh_key_path", "SSH key", "private key file", "~/.ssh/id_ed25519"),
    FieldInfo(
        "brev_instance_name",
        "Brev instance",
        "Brev instance this context drives",
        "the instance's name in 'brev ls'",
    ),
    FieldInfo(
        "start_command",
        "Start command",
        "shell template that starts the machine",
        "aws ec2 start-instances --instance-ids i-0abc",
    ),
    FieldInfo(
        "stop_command",
        "Stop command",
        "shell template that stops the machine",
        "aws ec2 stop-instances --instance-ids i-0abc",
    ),
    FieldInfo(
        "status_command",
        "Status command",
        "shell template printing running|stopped|...",
        "prints running, stopped, starting or stopping",
    ),
    FieldInfo(
        "partition",
        "Partition",
        "Slurm partition the allocation is asked from",
        "gpu: a partition 'sinfo' lists",
    ),
    FieldInfo("account", "Account", "Slurm account to charge (sbatch --account)", "optional"),
    FieldInfo("qos", "QOS", "Slurm quality of service (sbatch --qos)", "optional"),
    FieldInfo(
        "gpus_per_node",
        "GPUs per node",
        "GPUs to ask for on each node (sbatch --gpus-per-node)",
        "none unless given",
        metavar="N",
        number=values.GPUS_PER_NODE,
    ),
    FieldInfo(
        "nodes",
        "Nodes",
        "nodes to ask for (sbatch --nodes; the project runs on the first)",
        "1",
        metavar="N",
        number=values.NODES,
    ),
    FieldInfo(
        "time_limit",
        "Time limit",
        "the allocation's time limit, the last backstop (sbatch --time, e.g. 4:00:00)",
        "4:00:00, 1-00:00:00; else the partition's default",
        flag="--time",
        metavar="TIME",
        number=values.TIME_LIMIT,
    ),
    FieldInfo(
        "hourly_rate",
        "Hourly rate ($)",
        "cost per hour, for the cost meter",
        "e.g. 2.49, to show the cost so far",
        number=values.HOURLY_RATE,
    ),
    FieldInfo(
        "idle_timeout_minutes",
        "Idle timeout (min)",
        "minutes without use before the remote agent stops the machine",
        "30",
        flag="--idle-timeout",
        metavar="MINUTES",
        number=values.IDLE_TIMEOUT_MINUTES,
    ),
    FieldInfo(
        "idle_gpu_busy_percent",
        "Busy GPU counts as use (%)",
        "a GPU at least this busy counts as use, so the remote agent never stops a machine in "
        "the middle of a training run (0: off, the default)",
        "off; 50 keeps a training run going",
        flag="--idle-gpu-busy",
        metavar="PERCENT",
        number=values.GPU_BUSY_PERCENT,
        unused="nothing stops it when idle",
    ),
    FieldInfo(
        "grace_period_seconds",
        "Grace period (s)",
        "seconds after the last window closes before the machine is stopped",
        "60: how long to wait after the last window",
        flag="--grace-period",
        metavar="SECONDS",
        number=values.GRACE_PERIOD_SECONDS,
    ),
    FieldInfo(
        "workbench_dir",
        "Workbench folder",
        "folder on the remote for projects and the agent (default ~/.nvwb)",
        "~/.nvwb",
        flag="--context-workbench-dir",
    ),
    FieldInfo(
        "stop_command_on_idle",
        "Idle stop command",
        "what the remote agent runs to stop an idle machine "
        f"(default: {DEFAULT_IDLE_STOP_COMMAND})",
        flag="--idle-stop-command",
        metavar="COMMAND",
        form=False,
    ),
    FieldInfo(
        "accepted_host_key",
        "Host key",
        "trust this host key fingerprint without asking",
        flag="--accept-host-key",
        metavar="SHA256:...",
        form=False,
    ),
)
INFO: Final[dict[str, FieldInfo]] = {info.name: info for info in CATALOGUE}

# Fields every kind takes; any other settable field belongs to the kinds that declare it.
SHARED: Final = (
    "description",
    "hourly_rate",
    "idle_timeout_minutes",
    "grace_period_seconds",
    "workbench_dir",
)
# Brought by a kind's flags: a remote machine has a host key and an idle stop command; one the
# idle guard may stop can count a busy GPU as use.
_REMOTE: Final = (
    FieldRule("accepted_host_key", form=False),
    FieldRule("stop_command_on_idle", default=DEFAULT_IDLE_STOP_COMMAND, form=False),
)
_GUARD: Final = (FieldRule("idle_gpu_busy_percent"),)


def rules_of(kind: Kind) -> tuple[FieldRule, ...]:
    """Every field ``kind`` takes beyond the shared ones: its own, then those its flags bring."""
    brought = (*(_REMOTE if kind.remote else ()), *(_GUARD if kind.guard else ()))
    return (*kind.fields, *(rule for rule in brought if not kind.uses(rule.name)))


def applies(kind: Kind, name: str) -> bool:
    return name in SHARED or any(rule.name == name for rule in rules_of(kind))


def form_fields(kind: Kind) -> tuple[str, ...]:
    """The fields the app's form shows for ``kind``, in the catalogue's order."""
    shown = {rule.name for rule in rules_of(kind) if rule.form} | set(SHARED)
    return tuple(info.name for info in CATALOGUE if info.form and info.name in shown)


def infer_kind(given: Collection[str], kinds: Sequence[Kind]) -> Kind | None:
    """The kind that fields given without a kind call for (``nvwb create context`` without
    ``--type``), or None when none does.

    A kind is a candidate when one of its required fields is given. The best has all its
    required fields given (a ``hostname`` alone is an ``ssh`` host, not a ``slurm`` login node
    without its partition); then fits every given field; then the one whose given required
    fields no other kind takes (``brev_instance_name`` over ``hostname``); then the one with
    more of them given; then the first in ``kinds``.
    """
    best: Kind | None = None
    best_key: tuple[int, int, int, int] | None = None
    for kind in kinds:
        required = [rule.name for rule in rules_of(kind) if rule.required]
        hits = [name for name in required if name in given]
        if not hits:
            continue
        missing = len(required) - len(hits)
        misfits = sum(1 for name in given if not applies(kind, name))
        own = sum(1 for name in hits if not any(applies(k, name) for k in kinds if k is not kind))
        key = (missing, misfits, -own, -len(hits))
        if best_key is None or key < best_key:
            best, best_key = kind, key
    return best
