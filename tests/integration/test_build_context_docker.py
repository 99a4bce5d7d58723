"""Images built from ``build_context`` on a real Docker engine, from the debootstrapped test base.

The unit tests check the Dockerfile's text; these check that it does what it says: apt.txt packages
are installed, the user has the host's ids (even where the base already has that uid), sudo works in
the build scripts and is gone afterwards, and a failing step is named from the build log.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import pytest

from tests.support.docker_env import TEST_LABELS
from workbench.container import build_context as bc
from workbench.container.build_context import ImageRecipe

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@dataclass
class BuildResult:
    tag: str
    step: str | None = None  # the last step the log announced
    error: str | None = None
    log: list[str] = field(default_factory=list)


def build(client: Any, recipe: ImageRecipe) -> BuildResult:
    """Build ``recipe`` the way the runtime will: stream the log and follow the step markers."""
    result = BuildResult(tag=bc.image_tag(recipe))
    stream = client.api.build(
        fileobj=io.BytesIO(bc.build_context_tar(recipe)),
        custom_context=True,
        tag=result.tag,
        decode=True,
        rm=True,
        forcerm=True,
    )
    for chunk in stream:
        line = chunk.get("stream") or chunk.get("error") or ""
        result.log.append(line)
        result.step = bc.step_from_log_line(line) or result.step
        if "error" in chunk:
            result.error = chunk["error"]
    return result


def sh(client: Any, image: str, script: str) -> str:
    """Run ``script`` in a fresh container of ``image`` as its default user; return its stdout."""
    out = client.containers.run(
        image, ["sh", "-c", script], remove=True, labels=TEST_LABELS, stdout=True, stderr=False
    )
    return bytes(out).decode().strip()


@pytest.fixture
def images(docker_client: Any) -> Iterator[list[str]]:
    """Tags a test built; removed afterwards so repeated runs start from the base."""
    tags: list[str] = []
    yield tags
    for tag in reversed(tags):
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            docker_client.images.remove(tag, force=True)


def derived_base(client: Any, base: str, tag: str, run: str, images: list[str]) -> str:
    """A base image made from the test base by one RUN (no network needed)."""
    dockerfile = f"FROM {base}\nUSER root\nRUN {run}\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
    images.append(tag)
    return tag


def test_builds_apt_packages_and_the_host_user(
    docker_client: Any, test_base_image: str, images: list[str]
) -> None:
    recipe = ImageRecipe(
        project_name="bc-it-apt",
        base_image=test_base_image,
        pip_binary=None,
        pre_build="#!/bin/bash\nsudo touch /opt/prebuild-ran\n",
        apt_txt="# small and quick\njq\n",
        post_build='#!/bin/bash\necho "$(id -un)" > "$HOME/post-ran-as"\n',
        host_uid=1234,
        host_gid=2345,
    )
    result = build(docker_client, recipe)
    images.append(result.tag)
    assert result.error is None, "".join(result.log[-30:])
    assert result.step == "finish"
    assert "==> [workbench] step apt.txt\n" in result.log

    facts = sh(
        docker_client,
        result.tag,
        "id -u; id -g; id -un; pwd; stat -c %u:%g /project; jq --version;"
        " cat ~/post-ran-as; test -e /opt/prebuild-ran && echo prebuild;"
        " test -e /etc/sudoers.d/workbench-build && echo sudoers-left;"
        " sudo -n true 2>/dev/null && echo sudo-still-works; true",
    ).splitlines()
    assert facts == [
        "1234",
        "2345",
        "workbench",
        "/project",
        "1234:2345",
        "jq-1.6",
        "workbench",
        "prebuild",
    ]

    # Nothing changed: same tag, and the engine already has it.
    assert bc.image_tag(recipe) == result.tag
    assert docker_client.images.get(result.tag).id


def test_uid_taken_by_a_base_user_is_taken_over(
    docker_client: Any, test_base_image: str, images: list[str]
) -> None:
    # Like Ubuntu 24.04 images, whose "ubuntu" user holds uid and gid 1000.
    base = derived_base(
        docker_client,
        test_base_image,
        "workbench-test-base:bc-it-ubuntu-user",
        "groupadd -g 1000 ubuntu && useradd -l -m -u 1000 -g 1000 -s /bin/bash ubuntu"
        " && touch /home/ubuntu/kept && chown ubuntu:ubuntu /home/ubuntu/kept",
        images,
    )
    recipe = ImageRecipe(project_name="bc-it-ubuntu", base_image=base, host_uid=1000, host_gid=1000)
    result = build(docker_client, recipe)
    images.append(result.tag)
    assert result.error is None, "".join(result.log[-30:])

    facts = sh(
        docker_client,
        result.tag,
        "id -u; id -g; id -un; id -gn; echo $HOME; stat -c %U /home/workbench/kept;"
        " getent passwd ubuntu || echo no-ubuntu",
    ).splitlines()
    assert facts == [
        "1000",
        "1000",
        "workbench",
        "workbench",
        "/home/workbench",
        "workbench",
        "no-ubuntu",
    ]


def test_root_on_the_host_gets_uid_1000(
    docker_client: Any, test_base_image: str, images: list[str]
) -> None:
    recipe = ImageRecipe(
        project_name="bc-it-root", base_image=test_base_image, host_uid=0, host_gid=0
    )
    result = build(docker_client, recipe)
    images.append(result.tag)
    assert result.error is None, "".join(result.log[-30:])
    assert sh(docker_client, result.tag, "id -u; id -g; id -un").splitlines() == [
        "1000",
        "1000",
        "workbench",
    ]


def test_base_without_sudo(docker_client: Any, test_base_image: str, images: list[str]) -> None:
    base = derived_base(
        docker_client,
        test_base_image,
        "workbench-test-base:bc-it-no-sudo",
        # sudo's prerm refuses without this when root has no password.
        "SUDO_FORCE_REMOVE=yes dpkg --purge sudo",
        images,
    )
    script = "#!/bin/bash\nid -u > /opt/prebuild-uid\n"

    # Told the truth, the scripts run as root.
    recipe = ImageRecipe(
        project_name="bc-it-nosudo", base_image=base, pre_build=script, base_has_sudo=False
    )
    result = build(docker_client, recipe)
    images.append(result.tag)
    assert result.error is None, "".join(result.log[-30:])
    assert sh(docker_client, result.tag, "cat /opt/prebuild-uid; id -un") == "0\nworkbench"

    # Not told, the build stops at the sudo step with a message saying so.
    wrong = ImageRecipe(project_name="bc-it-nosudo", base_image=base, pre_build=script)
    failed = build(docker_client, wrong)
    assert failed.error is not None
    assert failed.step == "sudo"
    assert any(bc.NO_SUDO_MESSAGE in line for line in failed.log)


def test_a_failing_step_is_named_from_the_log(
    docker_client: Any, test_base_image: str, images: list[str]
) -> None:
    recipe = ImageRecipe(
        project_name="bc-it-fails",
        base_image=test_base_image,
        pre_build="#!/bin/bash\necho fine\n",
        post_build="#!/bin/bash\necho about to fail\nexit 3\n",
    )
    result = build(docker_client, recipe)
    assert result.error is not None
    assert "3" in result.error
    assert result.step == "postBuild.bash"
