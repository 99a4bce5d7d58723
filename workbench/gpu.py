"""What GPUs a context has, read from ``nvidia-smi``.

Workbench asks for GPUs only where a context has them, and shows the user which ones (model, memory,
architecture, whether the card does FP8 or FP4) before a project needs them. The same parser serves
every context: the caller passes a *runner* that executes a command string and returns
``(exit status, stdout, stderr)``, locally through :func:`run_local` or remotely over SSH.

nvidia-smi has no single command that prints everything: ``--query-gpu`` gives per-GPU fields as
CSV but not the CUDA version the driver supports, which only the plain table's header carries.
Drivers before R510 do not know the ``compute_cap`` field at all; there the compute capability comes
from the board's name.
"""

from __future__ import annotations

import csv
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from workbench.errors import ContextError

Runner = Callable[[str], tuple[int, str, str]]
"""Runs a command string; returns ``(exit status, stdout, stderr)``. Exit 127: not installed."""

QUERY_FIELDS: tuple[str, ...] = (
    "index",
    "name",
    "memory.total",
    "driver_version",
    "compute_cap",
    "uuid",
)
# Drivers before R510 reject the whole query when one field is unknown, so the fallback drops it.
LEGACY_QUERY_FIELDS: tuple[str, ...] = tuple(f for f in QUERY_FIELDS if f != "compute_cap")

QUERY_COMMAND = f"nvidia-smi --query-gpu={','.join(QUERY_FIELDS)} --format=csv,noheader,nounits"
LEGACY_QUERY_COMMAND = (
    f"nvidia-smi --query-gpu={','.join(LEGACY_QUERY_FIELDS)} --format=csv,noheader,nounits"
)
BANNER_COMMAND = "nvidia-smi"

LOCAL_TIMEOUT_S = 30.0

_NOT_FOUND = re.compile(
    r"nvidia-smi: (command )?not found|nvidia-smi: No such file or directory"
    r"|'nvidia-smi' is not recognized",  # cmd.exe, for a Windows host reached over SSH
    re.I,
)
_NO_DEVICES = re.compile(r"No devices were found", re.I)
_UNKNOWN_FIELD = re.compile(r'Field "compute_cap" is not a valid field to query', re.I)
_CUDA_VERSION = re.compile(r"CUDA Version:\s*(\d+\.\d+)")
_CC = re.compile(r"(\d+)\.(\d+)")

# nvidia-smi prints these in place of a value it cannot read (vGPU guests, MIG, some drivers).
_MISSING = {"", "[N/A]", "N/A", "[Not Supported]", "[Unknown Error]", "[Insufficient Permissions]"}

# Compute capability (major, minor) -> architecture. Majors 10 to 12 are all Blackwell: 10.0 B200
# and GB200, 10.3 B300, 11.0 Jetson Thor, 12.0 GeForce RTX 50 and RTX PRO Blackwell, 12.1 DGX Spark.
_ARCH_BY_CC: dict[tuple[int, int], str] = {
    (3, 0): "Kepler",
    (3, 5): "Kepler",
    (3, 7): "Kepler",
    (5, 0): "Maxwell",
    (5, 2): "Maxwell",
    (5, 3): "Maxwell",
    (6, 0): "Pascal",
    (6, 1): "Pascal",
    (6, 2): "Pascal",
    (7, 0): "Volta",
    (7, 2): "Volta",
    (7, 5): "Turing",
    (8, 0): "Ampere",
    (8, 6): "Ampere",
    (8, 7): "Ampere",
    (8, 9): "Ada Lovelace",
    (9, 0): "Hopper",
}
_ARCH_BY_MAJOR: dict[int, str] = {
    3: "Kepler",
    5: "Maxwell",
    6: "Pascal",
    10: "Blackwell",
    11: "Blackwell",
    12: "Blackwell",
}

# Board name -> compute capability, for drivers that cannot report it. First match wins, so the
# more specific patterns come first. Drivers that old cannot run Ada, Hopper or Blackwell boards,
# but the newer rows cost nothing and cover odd setups (a new board on a hand-built old nvidia-smi).
_CC_BY_NAME: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.I), cc)
    for pattern, cc in (
        (r"\bG?B300\b", "10.3"),
        (r"\bG?B[12]00\b", "10.0"),
        (r"RTX 50\d0|RTX PRO \d+ Blackwell", "12.0"),
        (r"\bG?H(100|200|800)\b", "9.0"),
        (r"RTX 40\d0|\bL4\b|\bL40S?\b|\bL20\b|RTX \d+ Ada|RTX 2000 Ada", "8.9"),
        (r"\bA(100|800|30)\b|A100-", "8.0"),
        (r"Orin", "8.7"),
        (r"RTX 30\d0|\bA(2|10G?|16|40)\b|RTX A\d+|\bA10-", "8.6"),
        (r"\bT4\b|RTX 20\d0|GTX 16\d0|Quadro RTX|TITAN RTX|\bT\d{3,4}\b", "7.5"),
        (r"Xavier", "7.2"),
        (r"V100|TITAN V\b", "7.0"),
        (r"P100", "6.0"),
        (r"\bP(4|40|6)\b|GTX 10\d0|TITAN Xp|TITAN X \(Pascal\)", "6.1"),
        (r"M(40|60)\b|GTX 9\d0|TITAN X\b", "5.2"),
        (r"K80", "3.7"),
    )
)


class GpuDetectionError(ContextError):
    """nvidia-smi is installed but could not report the GPUs (driver not loaded, bad output)."""

    code = "gpu_detection"

    def __init__(
        self,
        message: str,
        *,
        command: str,
        exit_status: int,
        output: str = "",
        context: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, context=context, hint=hint)
        self.command = command
        self.exit_status = exit_status
        self.output = output

    def details(self) -> dict[str, Any]:
        return {
            **super().details(),
            "command": self.command,
            "exit_status": self.exit_status,
            "output": self.output,
        }


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as nvidia-smi reports it, plus what follows from its compute capability."""

    index: int
    name: str
    memory_total_mib: int | None
    driver_version: str | None
    cuda_version: str | None  # highest CUDA the driver supports, from the banner
    compute_capability: str | None  # "9.0"
    architecture: str | None  # "Hopper"; None when the compute capability is unknown
    fp8: bool
    fp4: bool
    uuid: str | None

    @property
    def memory_gib(self) -> int | None:
        """Memory in whole GiB, as people name cards (81559 MiB -> 80)."""
        if self.memory_total_mib is None:
            return None
        return round(self.memory_total_mib / 1024)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, for ``-o json``, the service protocol and cached context state."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuInfo:
        """The inverse of :meth:`to_dict`; unknown keys (from a newer Workbench) are ignored."""
        fields: dict[str, Any] = {name: data.get(name) for name in cls.__dataclass_fields__}
        return cls(**fields)


def architecture_for(compute_capability: str | None) -> str | None:
    """The architecture's name for a compute capability such as ``"8.9"``, or None if unknown."""
    cc = _parse_cc(compute_capability)
    if cc is None:
        return None
    return _ARCH_BY_CC.get(cc) or _ARCH_BY_MAJOR.get(cc[0])


def supports_fp8(compute_capability: str | None) -> bool:
    """FP8 tensor cores came with Ada Lovelace (8.9) and Hopper (9.0); every later GPU has them."""
    cc = _parse_cc(compute_capability)
    return cc is not None and cc >= (8, 9)


def supports_fp4(compute_capability: str | None) -> bool:
    """FP4 (NVFP4/MXFP4) tensor cores are Blackwell's, data centre and consumer alike."""
    return architecture_for(compute_capability) == "Blackwell"


def compute_capability_from_name(name: str) -> str | None:
    """Best guess at the compute capability from a board name, for drivers that cannot say."""
    for pattern, cc in _CC_BY_NAME:
        if pattern.search(name):
            return cc
    return None


def parse_cuda_version(banner: str) -> str | None:
    """The ``CUDA Version: 12.4`` from plain nvidia-smi's header, or None if absent."""
    match = _CUDA_VERSION.search(banner)
    return match.group(1) if match else None


def parse_query(
    output: str, *, fields: Sequence[str] = QUERY_FIELDS, cuda_version: str | None = None
) -> list[GpuInfo]:
    """GPUs from ``--query-gpu=<fields> --format=csv,noheader,nounits`` output."""
    gpus: list[GpuInfo] = []
    rows = csv.reader(output.splitlines(), skipinitialspace=True)
    for row in rows:
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(fields):
            raise ValueError(f"expected {len(fields)} fields, got {len(row)}: {', '.join(row)}")
        values = {
            f: (None if v.strip() in _MISSING else v.strip())
            for f, v in zip(fields, row, strict=True)
        }
        name = values["name"] or "Unknown GPU"
        cc = values.get("compute_cap") or compute_capability_from_name(name)
        gpus.append(
            GpuInfo(
                index=int(values["index"] or len(gpus)),
                name=name,
                memory_total_mib=_int_or_none(values["memory.total"]),
                driver_version=values["driver_version"],
                cuda_version=cuda_version,
                compute_capability=cc,
                architecture=architecture_for(cc),
                fp8=supports_fp8(cc),
                fp4=supports_fp4(cc),
                uuid=values["uuid"],
            )
        )
    return gpus


def detect_gpus(run: Runner) -> list[GpuInfo]:
    """The GPUs ``run`` can see: [] without nvidia-smi or without devices.

    Raises :class:`GpuDetectionError` when nvidia-smi is there but fails, most often because the
    driver is not loaded, so a broken driver is not mistaken for a machine without GPUs.
    """
    command, fields = QUERY_COMMAND, QUERY_FIELDS
    status, out, err = run(command)
    if _is_missing(status, out, err):
        return []
    if status != 0 and _UNKNOWN_FIELD.search(out + err):
        command, fields = LEGACY_QUERY_COMMAND, LEGACY_QUERY_FIELDS
        status, out, err = run(command)
    if status != 0:
        if _NO_DEVICES.search(out + err):
            return []
        raise _failure(command, status, out, err)
    if not out.strip():
        return []
    banner_status, banner, _ = run(BANNER_COMMAND)
    # The CUDA version is a nicety: a banner that fails after a good query must not hide the GPUs.
    cuda = parse_cuda_version(banner) if banner_status == 0 else None
    try:
        return parse_query(out, fields=fields, cuda_version=cuda)
    except ValueError as exc:
        raise GpuDetectionError(
            f"could not read nvidia-smi's output: {exc}",
            command=command,
            exit_status=status,
            output=out,
        ) from exc


def summarize(gpus: Iterable[GpuInfo]) -> str:
    """One line for tables: ``8x NVIDIA H100 80GB HBM3 (80 GiB, Hopper, FP8)``; ``none`` if empty.

    Identical boards are counted together, in the order they first appear; mixed machines are
    joined with ``" + "``.
    """
    groups: dict[tuple[str, int | None, str | None, bool, bool], int] = {}
    for gpu in gpus:
        key = (gpu.name, gpu.memory_gib, gpu.architecture, gpu.fp8, gpu.fp4)
        groups[key] = groups.get(key, 0) + 1
    if not groups:
        return "none"
    parts = []
    for (name, gib, arch, fp8, fp4), count in groups.items():
        traits = [f"{gib} GiB" if gib is not None else None, arch]
        traits += ["FP8" if fp8 else None, "FP4" if fp4 else None]
        shown = ", ".join(t for t in traits if t)
        parts.append(f"{count}x {name}" + (f" ({shown})" if shown else ""))
    return " + ".join(parts)


def run_local(command: str) -> tuple[int, str, str]:
    """A :data:`Runner` for this machine: splits ``command`` itself and runs it without a shell."""
    argv = shlex.split(command)
    try:
        done = subprocess.run(  # an argv list, never a shell
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=LOCAL_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except PermissionError as exc:
        return 126, "", f"{argv[0]}: {exc.strerror}"
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: timed out after {LOCAL_TIMEOUT_S:g} s"
    return done.returncode, done.stdout, done.stderr


def _is_missing(status: int, out: str, err: str) -> bool:
    # 127 is the shells' "command not found"; the text covers runners that report it differently.
    return status == 127 or (status != 0 and bool(_NOT_FOUND.search(err or out)))


def _failure(command: str, status: int, out: str, err: str) -> GpuDetectionError:
    text = (err.strip() or out.strip()).splitlines()
    reason = text[0] if text else f"exit status {status}"
    hint = None
    if "communicate with the NVIDIA driver" in reason or "version mismatch" in reason:
        # Both mean the loaded kernel module and the user-space tools disagree or one is missing.
        hint = (
            "the NVIDIA kernel driver is not loaded or does not match nvidia-smi; "
            "reboot after a driver update, or reinstall the driver"
        )
    return GpuDetectionError(
        f"nvidia-smi failed: {reason}",
        command=command,
        exit_status=status,
        output=(out + err).strip(),
        hint=hint,
    )


def _parse_cc(value: str | None) -> tuple[int, int] | None:
    match = _CC.fullmatch(value.strip()) if value else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None
