"""GPU detection against real nvidia-smi output kept in tests/fixtures/nvidia-smi/."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from workbench import gpu
from workbench.errors import ContextError, WorkbenchError
from workbench.gpu import (
    BANNER_COMMAND,
    LEGACY_QUERY_COMMAND,
    QUERY_COMMAND,
    GpuDetectionError,
    GpuInfo,
    detect_gpus,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia-smi"


def read(sample: str, name: str) -> str:
    return (FIXTURES / sample / name).read_text(encoding="utf-8")


class FakeRunner:
    """Answers each command from a table and records what was run, in order."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, command: str) -> tuple[int, str, str]:
        self.calls.append(command)
        return self.answers[command]


def machine(sample: str) -> FakeRunner:
    return FakeRunner(
        {
            QUERY_COMMAND: (0, read(sample, "query.csv"), ""),
            BANNER_COMMAND: (0, read(sample, "banner.txt"), ""),
        }
    )


# sample, count, name, MiB, driver, CUDA, cc, architecture, fp8, fp4, summary
SAMPLES = [
    (
        "h100-80gb-hbm3-x8",
        8,
        "NVIDIA H100 80GB HBM3",
        81559,
        "550.54.15",
        "12.4",
        "9.0",
        "Hopper",
        True,
        False,
        "8x NVIDIA H100 80GB HBM3 (80 GiB, Hopper, FP8)",
    ),
    (
        "rtx-4090",
        1,
        "NVIDIA GeForce RTX 4090",
        24564,
        "560.35.03",
        "12.6",
        "8.9",
        "Ada Lovelace",
        True,
        False,
        "1x NVIDIA GeForce RTX 4090 (24 GiB, Ada Lovelace, FP8)",
    ),
    (
        "a100-sxm4-40gb",
        1,
        "NVIDIA A100-SXM4-40GB",
        40960,
        "535.104.05",
        "12.2",
        "8.0",
        "Ampere",
        False,
        False,
        "1x NVIDIA A100-SXM4-40GB (40 GiB, Ampere)",
    ),
    (
        "l4",
        1,
        "NVIDIA L4",
        23034,
        "535.104.05",
        "12.2",
        "8.9",
        "Ada Lovelace",
        True,
        False,
        "1x NVIDIA L4 (22 GiB, Ada Lovelace, FP8)",
    ),
    (
        "rtx-5090",
        1,
        "NVIDIA GeForce RTX 5090",
        32607,
        "570.133.07",
        "12.8",
        "12.0",
        "Blackwell",
        True,
        True,
        "1x NVIDIA GeForce RTX 5090 (32 GiB, Blackwell, FP8, FP4)",
    ),
    (
        "b200-x8",
        8,
        "NVIDIA B200",
        183359,
        "570.124.06",
        "12.8",
        "10.0",
        "Blackwell",
        True,
        True,
        "8x NVIDIA B200 (179 GiB, Blackwell, FP8, FP4)",
    ),
]


@pytest.mark.parametrize(
    ("sample", "count", "name", "mib", "driver", "cuda", "cc", "arch", "fp8", "fp4", "summary"),
    SAMPLES,
    ids=[s[0] for s in SAMPLES],
)
def test_each_sample(sample, count, name, mib, driver, cuda, cc, arch, fp8, fp4, summary):
    run = machine(sample)
    gpus = detect_gpus(run)

    assert run.calls == [QUERY_COMMAND, BANNER_COMMAND]
    assert len(gpus) == count
    assert [g.index for g in gpus] == list(range(count))
    for g in gpus:
        assert g.name == name
        assert g.memory_total_mib == mib
        assert g.driver_version == driver
        assert g.cuda_version == cuda
        assert g.compute_capability == cc
        assert g.architecture == arch
        assert (g.fp8, g.fp4) == (fp8, fp4)
        assert g.uuid is not None and g.uuid.startswith("GPU-")
    assert len({g.uuid for g in gpus}) == count
    assert gpu.summarize(gpus) == summary


def test_old_driver_without_compute_cap_falls_back_to_the_name():
    run = FakeRunner(
        {
            QUERY_COMMAND: (2, read("t4-driver-470", "query.stdout.txt"), ""),
            LEGACY_QUERY_COMMAND: (0, read("t4-driver-470", "query-legacy.csv"), ""),
            BANNER_COMMAND: (0, read("t4-driver-470", "banner.txt"), ""),
        }
    )
    [t4] = detect_gpus(run)

    assert run.calls == [QUERY_COMMAND, LEGACY_QUERY_COMMAND, BANNER_COMMAND]
    assert t4 == GpuInfo(
        index=0,
        name="Tesla T4",
        memory_total_mib=15109,
        driver_version="470.182.03",
        cuda_version="11.4",
        compute_capability="7.5",
        architecture="Turing",
        fp8=False,
        fp4=False,
        uuid="GPU-5d0e3a8f-2b71-c6e4-19fa-8d3b7c2e6a01",
    )
    assert gpu.summarize([t4]) == "1x Tesla T4 (15 GiB, Turing)"


def test_legacy_query_is_the_same_query_without_compute_cap():
    assert QUERY_COMMAND.replace(",compute_cap", "") == LEGACY_QUERY_COMMAND
    assert QUERY_COMMAND == (
        "nvidia-smi --query-gpu=index,name,memory.total,driver_version,compute_cap,uuid"
        " --format=csv,noheader,nounits"
    )


@pytest.mark.parametrize(
    "answer",
    [
        (127, "", "bash: line 1: nvidia-smi: command not found"),
        (127, "", "sh: 1: nvidia-smi: not found"),
        (127, "", ""),
        (1, "", "bash: /usr/bin/nvidia-smi: No such file or directory"),
        (1, "", "'nvidia-smi' is not recognized as an internal or external command,"),
    ],
)
def test_missing_nvidia_smi_means_no_gpus(answer):
    run = FakeRunner({QUERY_COMMAND: answer})
    assert detect_gpus(run) == []
    assert run.calls == [QUERY_COMMAND]


def test_driver_with_no_devices_means_no_gpus():
    run = FakeRunner({QUERY_COMMAND: (6, read("no-devices", "stdout.txt"), "")})
    assert detect_gpus(run) == []


def test_empty_query_output_means_no_gpus():
    assert detect_gpus(FakeRunner({QUERY_COMMAND: (0, "\n", "")})) == []


def test_driver_failure_is_an_error_not_an_empty_list():
    message = read("driver-failure", "stdout.txt")
    run = FakeRunner({QUERY_COMMAND: (9, message, "")})

    with pytest.raises(GpuDetectionError) as caught:
        detect_gpus(run)

    err = caught.value
    assert isinstance(err, ContextError)
    assert isinstance(err, WorkbenchError)
    assert "couldn't communicate with the NVIDIA driver" in err.message
    assert err.message.startswith("nvidia-smi failed: NVIDIA-SMI has failed")
    assert err.hint is not None and "driver" in err.hint
    assert err.exit_status == 9
    assert err.command == QUERY_COMMAND
    data = err.to_dict()
    assert data["exit_status"] == 9
    assert json.dumps(data)


def test_driver_failure_on_stderr_is_reported_too():
    run = FakeRunner(
        {QUERY_COMMAND: (18, "", "Failed to initialize NVML: Driver/library version mismatch\n")}
    )
    with pytest.raises(GpuDetectionError, match="version mismatch") as caught:
        detect_gpus(run)
    assert caught.value.hint is not None


def test_garbled_output_is_an_error():
    run = FakeRunner({QUERY_COMMAND: (0, "0, NVIDIA H100\n", ""), BANNER_COMMAND: (0, "", "")})
    with pytest.raises(GpuDetectionError, match="expected 6 fields"):
        detect_gpus(run)


def test_failing_banner_leaves_cuda_unknown_but_keeps_the_gpus():
    run = FakeRunner(
        {
            QUERY_COMMAND: (0, read("l4", "query.csv"), ""),
            BANNER_COMMAND: (9, "", "something odd"),
        }
    )
    [l4] = detect_gpus(run)
    assert l4.cuda_version is None
    assert l4.architecture == "Ada Lovelace"


def test_not_available_values_become_none():
    # What a vGPU guest or a MIG-enabled board can print.
    gpus = gpu.parse_query("0, NVIDIA A100-SXM4-40GB, [N/A], 535.104.05, [N/A], [N/A]\n")
    [a100] = gpus
    assert a100.memory_total_mib is None
    assert a100.uuid is None
    # The name still gives the compute capability.
    assert a100.compute_capability == "8.0"
    assert gpu.summarize(gpus) == "1x NVIDIA A100-SXM4-40GB (Ampere)"


def test_mixed_machine_summary_keeps_order_and_counts():
    h100 = gpu.parse_query(read("h100-80gb-hbm3-x8", "query.csv"))[:2]
    rtx = gpu.parse_query(read("rtx-4090", "query.csv"))
    assert gpu.summarize([*h100, *rtx]) == (
        "2x NVIDIA H100 80GB HBM3 (80 GiB, Hopper, FP8)"
        " + 1x NVIDIA GeForce RTX 4090 (24 GiB, Ada Lovelace, FP8)"
    )
    assert gpu.summarize([]) == "none"


@pytest.mark.parametrize(
    ("cc", "arch", "fp8", "fp4"),
    [
        ("6.0", "Pascal", False, False),
        ("6.1", "Pascal", False, False),
        ("7.0", "Volta", False, False),
        ("7.2", "Volta", False, False),
        ("7.5", "Turing", False, False),
        ("8.0", "Ampere", False, False),
        ("8.6", "Ampere", False, False),
        ("8.7", "Ampere", False, False),
        ("8.9", "Ada Lovelace", True, False),
        ("9.0", "Hopper", True, False),
        ("10.0", "Blackwell", True, True),
        ("10.3", "Blackwell", True, True),
        ("12.0", "Blackwell", True, True),
        ("12.1", "Blackwell", True, True),
        ("13.0", None, True, False),
        ("", None, False, False),
        (None, None, False, False),
        ("garbage", None, False, False),
    ],
)
def test_architecture_table(cc, arch, fp8, fp4):
    assert gpu.architecture_for(cc) == arch
    assert gpu.supports_fp8(cc) is fp8
    assert gpu.supports_fp4(cc) is fp4


@pytest.mark.parametrize(
    ("name", "cc"),
    [
        ("Tesla T4", "7.5"),
        ("Tesla V100-SXM2-16GB", "7.0"),
        ("Tesla P100-PCIE-16GB", "6.0"),
        ("Tesla K80", "3.7"),
        ("NVIDIA A100-SXM4-40GB", "8.0"),
        ("NVIDIA A100 80GB PCIe", "8.0"),
        ("NVIDIA A10G", "8.6"),
        ("NVIDIA A10", "8.6"),
        ("NVIDIA GeForce RTX 3090", "8.6"),
        ("NVIDIA RTX A6000", "8.6"),
        ("NVIDIA L4", "8.9"),
        ("NVIDIA L40S", "8.9"),
        ("NVIDIA RTX 6000 Ada Generation", "8.9"),
        ("NVIDIA H100 80GB HBM3", "9.0"),
        ("NVIDIA H200", "9.0"),
        ("NVIDIA GH200 480GB", "9.0"),
        ("NVIDIA B200", "10.0"),
        ("NVIDIA GB200", "10.0"),
        ("NVIDIA B300 SXM6 AC", "10.3"),
        ("NVIDIA GeForce RTX 5090", "12.0"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "12.0"),
        ("Some Future Board", None),
    ],
)
def test_compute_capability_from_name(name, cc):
    assert gpu.compute_capability_from_name(name) == cc


def test_to_dict_round_trips_through_json():
    gpus = gpu.parse_query(read("b200-x8", "query.csv"), cuda_version="12.8")
    data = json.loads(json.dumps([g.to_dict() for g in gpus]))
    assert data[0]["compute_capability"] == "10.0"
    assert data[0]["fp4"] is True
    assert data[0]["memory_total_mib"] == 183359
    assert [GpuInfo.from_dict(d) for d in data] == gpus


def test_parse_cuda_version_from_both_table_layouts():
    assert gpu.parse_cuda_version(read("h100-80gb-hbm3-x8", "banner.txt")) == "12.4"
    assert gpu.parse_cuda_version(read("t4-driver-470", "banner.txt")) == "11.4"
    assert gpu.parse_cuda_version("no table here") is None


def test_run_local_reports_a_missing_program_as_127():
    status, out, err = gpu.run_local("definitely-not-a-real-program-xyz --version")
    assert status == 127
    assert out == ""
    assert "command not found" in err


def test_run_local_never_uses_a_shell(tmp_path: Path):
    # A ';' must reach the program as an argument, not start a second command.
    marker = tmp_path / "pwned"
    status, out, _ = gpu.run_local(f"echo hello; touch {marker}")
    assert status == 0
    assert out.strip() == f"hello; touch {marker}"
    assert not marker.exists()


def test_detect_with_run_local_and_a_fake_nvidia_smi(tmp_path: Path, monkeypatch):
    # The whole path through subprocess: a script named nvidia-smi that prints the L4 sample.
    script = tmp_path / "nvidia-smi"
    query = FIXTURES / "l4" / "query.csv"
    banner = FIXTURES / "l4" / "banner.txt"
    script.write_text(
        f'#!/bin/sh\ncase "$1" in --query-gpu=*) cat "{query}" ;; *) cat "{banner}" ;; esac\n',
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")

    [l4] = detect_gpus(gpu.run_local)
    assert (l4.name, l4.cuda_version, l4.architecture) == ("NVIDIA L4", "12.2", "Ada Lovelace")
