"""The Dockerfile, build context and image tag made from a project's build inputs."""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
import tarfile

import pytest

from workbench.container import build_context as bc
from workbench.container.build_context import ImageRecipe, render, step_from_log_line
from workbench.errors import InvalidValueError, SpecError

BASE = "nvcr.io/nvidia/ai-workbench/python-basic:1.0.2"

# AI Workbench's own template for a new project's preBuild.bash: comments only.
AIWB_TEMPLATE = """#!/bin/bash
# This file contains bash commands that will be executed at the beginning of the container build
# process, before any system packages or programming language specific package have been installed.
#
# Note: This file may be removed if you don't need to use it
"""

FULL = ImageRecipe(
    project_name="Hybrid-RAG",
    base_image=BASE,
    apt=True,
    pip_binary="/opt/conda/bin/pip",
    pre_build="#!/bin/bash\nsudo mkdir -p /opt/models\n",
    apt_txt="# tools\njq\ntree  # to look around\n\n",
    requirements_txt="requests==2.32.3\n",
    post_build="#!/bin/bash\necho done > /tmp/post\n",
    host_uid=1001,
    host_gid=1002,
    environment={"TENSORBOARD_LOGS_DIRECTORY": "/data/tensorboard/logs/", "B": "2"},
)


def markers(dockerfile: str) -> list[str]:
    return re.findall(r"echo '==> \[workbench\] step ([^']+)'", dockerfile)


def test_full_recipe_runs_every_step_in_ai_workbench_order():
    ctx = render(FULL)
    assert ctx.steps == (
        "base",
        "user",
        "sudo",
        "preBuild.bash",
        "apt.txt",
        "requirements.txt",
        "postBuild.bash",
        "finish",
    )
    assert markers(ctx.dockerfile) == list(ctx.steps[1:])
    lines = ctx.dockerfile.splitlines()
    assert next(ln for ln in lines if not ln.startswith("#")) == f"FROM {BASE}"
    assert lines[-2:] == ["USER workbench", "WORKDIR /project"]
    # Each step has a comment naming it, in the same order as its marker.
    comments = [ln.split()[2] for ln in lines if ln.startswith("# step: ")]
    assert comments == list(ctx.steps[1:])


def test_each_step_is_its_own_run():
    text = render(FULL).dockerfile
    runs = [chunk for chunk in text.split("\nRUN ")[1:]]
    assert len(runs) == 7
    for chunk in runs:
        assert chunk.startswith("echo '==> [workbench] step ")
        assert chunk.count("==> [workbench] step") == 1


def test_apt_step_updates_first_installs_noninteractively_and_cleans_up():
    text = render(FULL).dockerfile
    apt = text[text.index("step apt.txt'") : text.index("# step: requirements.txt")]
    order = [
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get update",
        "apt-get install -y jq tree",
        "rm -rf /var/lib/apt/lists/*",
    ]
    positions = [apt.index(piece) for piece in order]
    assert positions == sorted(positions)


def test_requirements_use_the_bases_pip():
    ctx = render(FULL)
    assert (
        "/opt/conda/bin/pip install --no-cache-dir -r /opt/project/build/requirements.txt"
        in ctx.dockerfile
    )
    assert "COPY requirements.txt /opt/project/build/requirements.txt" in ctx.dockerfile
    assert ctx.files["requirements.txt"] == b"requests==2.32.3\n"


def test_build_scripts_run_as_workbench_with_sudo_granted_then_removed():
    text = render(FULL).dockerfile
    grant = text.index("NOPASSWD:ALL' > /etc/sudoers.d/workbench-build")
    pre = text.index("bash /opt/project/build/preBuild.bash")
    post = text.index("bash /opt/project/build/postBuild.bash")
    revoke = text.index("rm -f /etc/sudoers.d/workbench-build")
    assert grant < pre < post < revoke
    # The USER line right before each script's RUN is workbench; root comes back after.
    for script in ("preBuild.bash", "postBuild.bash"):
        block = text[text.index(f"# step: {script}") :].split("\n\n")[0].splitlines()
        assert block[2:4] == ["USER workbench", f"RUN echo '==> [workbench] step {script}' \\"]
        assert block[-1] == "USER root"
        assert f"COPY --chown=1001:1002 {script} /opt/project/build/{script}" in block


def test_base_without_sudo_runs_scripts_as_root_and_grants_nothing():
    ctx = render(dataclasses.replace(FULL, base_has_sudo=False))
    assert "sudo" not in ctx.steps and "finish" not in ctx.steps
    assert "sudoers" not in ctx.dockerfile
    block = ctx.dockerfile[ctx.dockerfile.index("# step: preBuild.bash") :].splitlines()
    assert block[0] == "# step: preBuild.bash (as root)"
    assert block[2] == "USER root"
    assert ctx.dockerfile.splitlines()[-2:] == ["USER workbench", "WORKDIR /project"]


def test_sudo_step_fails_clearly_on_a_base_that_lacks_sudo():
    text = render(FULL).dockerfile
    assert "command -v sudo" in text
    assert bc.NO_SUDO_MESSAGE in text


def test_empty_inputs_skip_their_steps():
    ctx = render(ImageRecipe(project_name="empty", base_image=BASE))
    assert ctx.steps == ("base", "user")
    assert sorted(ctx.files) == ["Dockerfile", "workbench-user.sh"]
    assert "apt-get" not in ctx.dockerfile
    assert "pip" not in ctx.dockerfile
    assert "sudo" not in ctx.dockerfile


def test_comment_only_inputs_count_as_empty():
    recipe = ImageRecipe(
        project_name="templated",
        base_image=BASE,
        pre_build=AIWB_TEMPLATE,
        apt_txt="# one package per line\n\n   # indented comment\n",
        requirements_txt="# pip packages\n",
        post_build=AIWB_TEMPLATE.replace("beginning", "end"),
    )
    assert render(recipe).steps == ("base", "user")
    # And so they need no package manager.
    bare = dataclasses.replace(recipe, apt=False, pip_binary=None)
    assert render(bare).tag == render(recipe).tag


def test_only_one_script_still_gets_sudo_and_finish():
    recipe = ImageRecipe(project_name="p", base_image=BASE, post_build="sudo true\n")
    assert render(recipe).steps == ("base", "user", "sudo", "postBuild.bash", "finish")


def test_apt_txt_comments_and_blank_lines_are_ignored():
    text = (
        "# header\njq\n\n  tree   # a trailing comment\n#curl\n"
        "libgl1 ffmpeg\npython3-dev=3.11.2-1+b1\n"
    )
    assert bc.apt_packages(text) == ["jq", "tree", "libgl1", "ffmpeg", "python3-dev=3.11.2-1+b1"]
    recipe = dataclasses.replace(FULL, apt_txt=text)
    assert (
        "apt-get install -y jq tree libgl1 ffmpeg python3-dev=3.11.2-1+b1"
        in render(recipe).dockerfile
    )
    assert "curl" not in render(recipe).dockerfile


def test_apt_txt_rejects_what_is_not_a_package_name():
    with pytest.raises(SpecError) as caught:
        bc.apt_packages("jq\ncurl; rm -rf /\n")
    assert caught.value.file == "apt.txt"
    assert caught.value.line == 2
    assert "apt.txt:2" in str(caught.value)


def test_packages_without_a_package_manager_are_spec_errors():
    with pytest.raises(SpecError, match="no apt"):
        render(dataclasses.replace(FULL, apt=False))
    with pytest.raises(SpecError, match="no pip"):
        render(dataclasses.replace(FULL, pip_binary=None))


# --- user and ids -------------------------------------------------------------------------------


def test_user_gets_the_host_ids():
    ctx = render(FULL)
    script = ctx.files["workbench-user.sh"].decode()
    assert "\nuid=1001\n" in script and "\ngid=1002\n" in script


@pytest.mark.parametrize(
    ("host", "container"),
    [((0, 0), (1000, 1000)), ((0, 1002), (1000, 1002)), ((1234, 0), (1234, 1000))],
)
def test_host_root_becomes_1000_not_root(host, container):
    assert bc.container_ids(*host) == container
    recipe = dataclasses.replace(FULL, host_uid=host[0], host_gid=host[1])
    ctx = render(recipe)
    script = ctx.files["workbench-user.sh"].decode()
    assert f"\nuid={container[0]}\n" in script
    assert f"\ngid={container[1]}\n" in script
    assert f"--chown={container[0]}:{container[1]} " in ctx.dockerfile
    assert "uid=0" not in script


def test_root_host_and_1000_host_share_an_image():
    # Same container ids -> same Dockerfile -> same tag: no rebuild when root runs it.
    as_root = dataclasses.replace(FULL, host_uid=0, host_gid=0)
    as_1000 = dataclasses.replace(FULL, host_uid=1000, host_gid=1000)
    assert render(as_root).tag == render(as_1000).tag


def test_negative_ids_are_refused():
    with pytest.raises(InvalidValueError, match="host uid"):
        render(dataclasses.replace(FULL, host_uid=-1))


def test_user_script_is_valid_sh_and_handles_existing_users():
    script = render(FULL).files["workbench-user.sh"].decode()
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert script.startswith("#!/bin/sh\n")
    assert "usermod -l" in script  # renames e.g. ubuntu (1000)
    assert 'usermod -u "$uid"' in script  # renumbers an existing workbench user
    assert "useradd -l" in script
    assert "chown" in script and "/project" in script


# --- tag and hash -------------------------------------------------------------------------------


def test_tag_format_and_stability():
    first = render(FULL)
    again = render(dataclasses.replace(FULL))
    assert first.tag == again.tag
    assert re.fullmatch(r"project-hybrid-rag:[0-9a-f]{12}", first.tag)
    assert first.tag.endswith(first.digest[:12])
    assert bc.image_tag(FULL) == first.tag
    assert bc.input_hash(FULL) == first.digest
    assert bc.build_context_tar(FULL) == bc.build_context_tar(FULL)


def test_environment_order_does_not_change_the_tag():
    flipped = dataclasses.replace(FULL, environment=dict(reversed(FULL.environment.items())))
    assert render(flipped).tag == render(FULL).tag


@pytest.mark.parametrize(
    "change",
    [
        {"project_name": "hybrid-rag-2"},
        {"base_image": "nvcr.io/nvidia/ai-workbench/python-basic:1.0.3"},
        {"pip_binary": "/usr/bin/pip3"},
        {"pre_build": "#!/bin/bash\nsudo mkdir -p /opt/other\n"},
        {"apt_txt": "jq\n"},
        {"requirements_txt": "requests==2.32.4\n"},
        {"post_build": "#!/bin/bash\necho other\n"},
        {"host_uid": 1003},
        {"host_gid": 1003},
        {"environment": {"TENSORBOARD_LOGS_DIRECTORY": "/data/tb/", "B": "2"}},
        {"environment": {}},
        {"base_has_sudo": False},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_input_changes_the_tag(change):
    assert render(dataclasses.replace(FULL, **change)).tag != render(FULL).tag


def test_comment_edits_in_apt_txt_do_not_rebuild():
    edited = dataclasses.replace(FULL, apt_txt="jq\n# added a note\ntree\n")
    assert render(edited).tag == render(FULL).tag


def test_crlf_scripts_are_normalised():
    crlf = dataclasses.replace(FULL, pre_build="#!/bin/bash\r\nsudo mkdir -p /opt/models\r\n")
    assert render(crlf).files["preBuild.bash"] == b"#!/bin/bash\nsudo mkdir -p /opt/models\n"
    assert render(crlf).tag == render(FULL).tag


@pytest.mark.parametrize(
    ("name", "repository"),
    [
        ("Hybrid-RAG", "project-hybrid-rag"),
        ("my_project", "project-my_project"),
        ("a__b", "project-a__b"),
        ("a.b", "project-a.b"),
        ("a--b", "project-a--b"),
        ("a._b", "project-a-b"),
        ("a___b", "project-a-b"),
        ("trailing-", "project-trailing"),
        ("v1.", "project-v1"),
    ],
)
def test_repository_names_are_valid_for_docker(name, repository):
    assert bc.image_repository(name) == repository
    component = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
    assert re.fullmatch(component, repository)


@pytest.mark.parametrize("name", ["", "has space", "../up", "-dash"])
def test_bad_project_names_are_refused(name):
    with pytest.raises(InvalidValueError):
        render(dataclasses.replace(FULL, project_name=name))


@pytest.mark.parametrize(
    "image", ["", "ubuntu\nRUN rm -rf /", "ubuntu:22.04 AS x", 'a"b', "--platform=x ubuntu"]
)
def test_base_image_cannot_inject_dockerfile_lines(image):
    with pytest.raises(InvalidValueError, match="base image"):
        render(dataclasses.replace(FULL, base_image=image))


@pytest.mark.parametrize(
    "image",
    [
        BASE,
        "workbench-test-base:bookworm",
        "ghcr.io/huggingface/text-generation-inference:latest",
        "nvcr.io/nvidia/pytorch@sha256:" + "a" * 64,
        "localhost:5000/x/y:1",
    ],
)
def test_real_image_references_are_accepted(image):
    assert (
        render(dataclasses.replace(FULL, base_image=image)).dockerfile.count(f"FROM {image}\n") == 1
    )


# --- environment --------------------------------------------------------------------------------


def test_environment_is_sorted_and_escaped():
    recipe = dataclasses.replace(FULL, environment={"Z": 'say "hi" to $USER \\ now', "A": ""})
    lines = [ln for ln in render(recipe).dockerfile.splitlines() if ln.startswith("ENV ")]
    assert lines == ['ENV A=""', 'ENV Z="say \\"hi\\" to \\$USER \\\\ now"']


def test_environment_rejects_bad_names_and_multiline_values():
    with pytest.raises(InvalidValueError):
        render(dataclasses.replace(FULL, environment={"1BAD": "x"}))
    with pytest.raises(InvalidValueError, match="single line"):
        render(dataclasses.replace(FULL, environment={"OK": "a\nRUN evil"}))


# --- tar ----------------------------------------------------------------------------------------


def test_tar_holds_exactly_the_files_with_fixed_metadata():
    files = bc.build_context_files(FULL)
    data = bc.build_context_tar(FULL)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(files)
        for m in members:
            assert (m.mtime, m.uid, m.gid) == (0, 0, 0)
            extracted = tar.extractfile(m)
            assert extracted is not None
            assert extracted.read() == files[m.name]
    assert data[:2] != b"\x1f\x8b"  # not gzipped
    assert files["Dockerfile"].decode() == bc.render_dockerfile(FULL)


# --- log lines ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "step"),
    [
        ("Step 1/19 : FROM workbench-test-base:bookworm", "base"),
        ("#5 [1/14] FROM nvcr.io/nvidia/ai-workbench/python-basic:1.0.2@sha256:abc", "base"),
        (
            "Step 12/19 : RUN echo '==> [workbench] step apt.txt'  && export DEBIAN_FRONTEND=x",
            "apt.txt",
        ),
        ("==> [workbench] step apt.txt\n", "apt.txt"),
        (
            "#9 [6/14] RUN echo '==> [workbench] step preBuild.bash'     && bash /opt/x",
            "preBuild.bash",
        ),
        ("#9 0.211 ==> [workbench] step requirements.txt", "requirements.txt"),
        ("Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]", None),
        ("Step 9/19 : USER workbench", None),
        ("", None),
    ],
)
def test_step_from_log_line(line, step):
    assert step_from_log_line(line) == step


def test_following_a_failed_build_names_the_failing_step():
    log = [
        "Step 1/12 : FROM workbench-test-base:bookworm",
        " ---> d0221b3d0fd0",
        "Step 6/12 : RUN echo '==> [workbench] step user'  && sh /opt/x/workbench-user.sh",
        "==> [workbench] step user",
        "Step 7/12 : RUN echo '==> [workbench] step apt.txt'  && apt-get update",
        "==> [workbench] step apt.txt",
        "E: Unable to locate package not-a-package",
        "The command '/bin/sh -c echo ...' returned a non-zero code: 100",
    ]
    current = None
    for line in log:
        current = step_from_log_line(line) or current
    assert current == "apt.txt"
