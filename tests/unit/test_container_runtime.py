"""The container runtime's pure parts: recipe, plan, GPU check, app commands and URLs, progress."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.container import builder
from workbench.container.apps import local_url, proxy_prefix, unescape
from workbench.container.builder import BuildProgress
from workbench.container.docker_transport import _engine_error
from workbench.container.recipe import recipe_for
from workbench.container.runtime import GpuShortage, check_gpus, plan_container
from workbench.gpu import GpuInfo
from workbench.spec import SpecDocument

SPEC = """\
specVersion: v2
meta:
    name: demo
environment:
    base:
        registry: nvcr.io
        image: nvidia/ai-workbench/python-basic:1.0.8
        entrypoint_script: /entrypoint.sh
        package_managers:
            - name: apt
              binary_path: /usr/bin/apt
            - name: pip
              binary_path: /usr/local/bin/pip
        apps:
            - name: jupyterlab
              type: jupyterlab
              class: webapp
              start_command: jupyter lab --NotebookApp.base_url=\\\\$PROXY_PREFIX
              webapp_options:
                  port: "8888"
                  proxy:
                      trim_prefix: false
                  url_command: jupyter lab list
execution:
    apps:
        - name: web
          type: custom
          class: webapp
          start_command: python3 -m http.server 8080
          webapp_options:
              port: "8080"
              proxy:
                  trim_prefix: true
              url: http://localhost:8080/
    resources:
        gpu:
            requested: 2
        sharedMemoryMB: 2048
    mounts:
        - type: project
          target: /project/
        - type: volume
          target: /data/cache/
        - type: tmp
          target: /scratch/
        - type: host
          target: /data/models/
          options: ro
        - type: host
          target: /data/unset/
"""


def gpu(index: int) -> GpuInfo:
    return GpuInfo(index, "NVIDIA L4", 23034, "550.54", "12.4", "8.9", "Ada", True, False, None)


@pytest.fixture
def doc(tmp_path: Path) -> SpecDocument:
    (tmp_path / ".project").mkdir()
    spec = tmp_path / ".project" / "spec.yaml"
    spec.write_text(SPEC)
    (tmp_path / "apt.txt").write_text("jq\n")
    (tmp_path / "requirements.txt").write_text("requests\n")
    return SpecDocument.load(spec)


def test_recipe_reads_the_base_and_build_inputs(doc: SpecDocument, tmp_path: Path) -> None:
    recipe = recipe_for(tmp_path, doc.spec, host_uid=1234, host_gid=99)
    assert recipe.base_image == "nvcr.io/nvidia/ai-workbench/python-basic:1.0.8"
    assert recipe.apt and recipe.pip_binary == "/usr/local/bin/pip"
    assert recipe.apt_txt == "jq\n" and recipe.requirements_txt == "requests\n"
    assert recipe.pre_build == "" and (recipe.host_uid, recipe.host_gid) == (1234, 99)


def test_plan_mounts_ports_gpus_and_shared_memory(doc: SpecDocument) -> None:
    plan = plan_container(
        project="demo",
        project_id="3f9c02ab",
        spec=doc.spec,
        apps=doc.apps(),
        image="project-demo:abc",
        context="box",
        project_source="/home/u/.nvwb/projects/demo-3f9c02ab",
        host_mount_sources={"/data/models/": "/srv/models"},
        environment={"A": "1"},
        gpus=2,
        local_ports=False,
    )
    assert plan.name == "project-demo-3f9c02ab"  # the name for people, the id for uniqueness
    assert plan.mounts == [
        {
            "type": "bind",
            "source": "/home/u/.nvwb/projects/demo-3f9c02ab",
            "target": "/project",
            "read_only": False,
        },
        {
            "type": "volume",
            "source": "project-demo-3f9c02ab-data-cache",
            "target": "/data/cache",
            "read_only": False,
        },
        {"type": "tmpfs", "source": None, "target": "/scratch", "read_only": False},
        {"type": "bind", "source": "/srv/models", "target": "/data/models", "read_only": True},
    ]
    assert any(
        "/data/unset/" in w and "nvwb update context box --host-mount /data/unset/=FOLDER" in w
        for w in plan.warnings
    )
    assert sorted(p.container_port for p in plan.ports) == [8080, 8888]
    assert all(p.host_port is None for p in plan.ports)  # remote: the engine picks
    assert plan.shm_size_mb == 2048 and plan.gpus == 2
    assert plan.labels["workbench.project"] == "demo"
    assert plan.labels["workbench.project-id"] == "3f9c02ab"
    assert plan.labels["workbench.context"] == "box"
    twin = plan_container(
        project="demo",
        project_id="0a1b2c3d",
        spec=doc.spec,
        apps=doc.apps(),
        image="project-demo:abc",
        context="box",
        project_source="/home/u/.nvwb/projects/demo-0a1b2c3d",
        host_mount_sources={"/data/models/": "/srv/models"},
        environment={"A": "1"},
        gpus=2,
        local_ports=False,
    )
    # A project of the same name shares no container, volume or folder.
    assert twin.name != plan.name
    assert twin.mounts[0]["source"] != plan.mounts[0]["source"]  # the project folder
    assert twin.mounts[1]["source"] != plan.mounts[1]["source"]  # the volume


def test_gpu_shortage_says_how_many_were_asked_and_how_many_there_are(
    doc: SpecDocument,
) -> None:
    assert check_gpus(doc.spec, [gpu(0), gpu(1)], "box") == 2
    with pytest.raises(GpuShortage) as caught:
        check_gpus(doc.spec, [gpu(0)], "box")
    assert caught.value.message == "the project requests 2 GPU(s) but context 'box' has 1"
    with pytest.raises(GpuShortage) as none:
        check_gpus(doc.spec, [], "laptop")
    assert none.value.message == "the project requests 2 GPU(s) but context 'laptop' has none"
    assert none.value.to_dict()["available"] == 0


def test_commands_lose_one_level_of_double_quote_escaping() -> None:
    assert (
        unescape(r"jupyter lab --base_url=\$PROXY_PREFIX") == "jupyter lab --base_url=$PROXY_PREFIX"
    )
    assert unescape(r"[ \$(curl -s x) == '200' ]") == "[ $(curl -s x) == '200' ]"
    assert unescape(r"echo \"hi\" \\ \`date\`") == 'echo "hi" \\ `date`'
    assert unescape(r"grep -E 'a\.b'") == r"grep -E 'a\.b'"  # other backslashes stay


def test_proxy_prefix_and_urls(doc: SpecDocument) -> None:
    apps = {a.name: a for a in doc.apps()}
    assert proxy_prefix("demo", apps["jupyterlab"]) == "/projects/demo/applications/jupyterlab"
    assert proxy_prefix("demo", apps["web"]) == ""
    assert local_url("http://localhost:8080/", "127.0.0.1:5555", "") == "http://127.0.0.1:5555/"
    assert (
        local_url(
            "http://0a1b2c:8888/projects/demo/applications/jupyterlab/?token=abc",
            "127.0.0.1:41000",
            "/projects/demo/applications/jupyterlab",
        )
        == "http://127.0.0.1:41000/projects/demo/applications/jupyterlab/?token=abc"
    )
    assert (
        local_url("http://localhost:6006", "127.0.0.1:7000", "/projects/p/applications/tb")
        == "http://127.0.0.1:7000/projects/p/applications/tb/"
    )


def test_build_progress_fraction() -> None:
    assert BuildProgress("apt.txt", 3, 4, "x", (5, 10)).fraction == 0.4
    assert BuildProgress("user", 2, 4, "x").fraction == 0.25
    assert BuildProgress(None, 0, 0, "x").fraction == 0.0


def test_apt_failures_name_the_package() -> None:
    failure = builder._failure(
        "apt.txt",
        "The command returned a non-zero code: 100",
        ["Reading package lists...", "E: Unable to locate package nosuch"],
        Path("/x/build.log"),
    )
    assert failure.reason == "apt cannot install 'nosuch'"
    assert "at step apt.txt" in failure.message and "full log: /x/build.log" in failure.message
    candidate = builder._failure(
        "apt.txt", "x", ["E: Package 'python' has no installation candidate"], Path("/l")
    )
    assert candidate.reason == "apt cannot install 'python'"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "permission denied while trying to connect to the Docker daemon socket at "
            "unix:///var/run/docker.sock",
            ("permission denied", "usermod -aG docker"),
        ),
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker "
            "daemon running?",
            ("no Docker engine answers", "systemctl start docker"),
        ),
    ],
)
def test_docker_engine_errors_say_what_to_do(text: str, words: tuple[str, str]) -> None:
    error = _engine_error(text, "box", "box")
    assert words[0] in error.message
    assert error.hint is not None and words[1] in error.hint
