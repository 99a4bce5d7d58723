"""The Docker engine the integration tests use, and the base image their containers start from.

There is no registry to pull from, so ``scripts/build-test-base-image`` makes
``workbench-test-base:bookworm`` from debootstrap once (CI runs it before the tests). Containers a
test starts itself carry ``TEST_LABELS`` so the session removes them even after a crash.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import docker
import docker.errors

from tests.support import SESSION_ID, ServiceUnavailable

#: The image made by scripts/build-test-base-image: Debian bookworm with python3, sudo, curl.
TEST_BASE_IMAGE = os.environ.get("WORKBENCH_TEST_BASE_IMAGE", "workbench-test-base:bookworm")

#: Labels for containers a test creates directly; ``remove_test_containers`` finds them by these.
TEST_LABELS = {"workbench.test": "1", "workbench.test-session": SESSION_ID}


class DockerUnavailable(ServiceUnavailable):
    """The engine or the base image is missing: the message says what to do."""


def connect() -> Any:
    """A ``docker.DockerClient`` for the engine in the environment, checked with a ping."""
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise DockerUnavailable(
            f"no Docker engine answers at {where}: {exc} (start dockerd, or join the docker group)"
        ) from exc
    return client


def check_base_image(client: Any, image: str = TEST_BASE_IMAGE) -> None:
    """Raise ``DockerUnavailable`` unless ``image`` is present in the engine."""
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound as exc:
        raise DockerUnavailable(
            f"the test base image {image} is missing; build it once with "
            "`sudo scripts/build-test-base-image`"
        ) from exc


def remove_test_containers(client: Any, session: str = SESSION_ID) -> int:
    """Force-remove this session's labelled containers; returns how many went."""
    removed = 0
    for container in client.containers.list(
        all=True, filters={"label": f"workbench.test-session={session}"}
    ):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
            removed += 1
    return removed
