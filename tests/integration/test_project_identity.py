"""Projects that share a ``meta.name`` share nothing else: secrets, containers, folders, records.

A clone and its ``cp -r`` copy, or a hostile repository that names itself after a victim's
project, carry the same ``meta.name``. Each must get its own keyring entries, container, remote
folder, state folders and service record, through an identity minted on this machine.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_container_support import make_project
from tests.support.cli import nvwb
from workbench.container.context_runtime import ContextRuntime, open_runtime
from workbench.container.session import ProjectSession
from workbench.paths import Paths
from workbench.projects import read_project
from workbench.registry import local_context

VALUE = "hf_0123456789abcdefVICTIM"


def _create(env: dict[str, str], name: str) -> Path:
    result = nvwb(
        env, "create", "project", name, "--base-environment-id", "debian-test", "-o", "json"
    )
    assert result.code == 0, result.err
    return Path(result.json()["path"])


def _set_secret(env: dict[str, str], project: Path, name: str, value: str) -> None:
    result = nvwb(
        env, "create", "environment-variable", name, "-", "--is-sensitive", cwd=project,
        stdin=value + "\n",
    )  # fmt: skip
    assert result.code == 0, result.err


def _secret_row(env: dict[str, str], project: Path, name: str) -> dict[str, Any]:
    result = nvwb(env, "list", "environment-variables", "-o", "json", cwd=project)
    assert result.code == 0, result.err
    return dict(next(r for r in result.json() if r["name"] == name))


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


# -- keyring -----------------------------------------------------------------------------------


def test_a_copied_project_does_not_see_the_originals_secrets(
    wb_env: dict[str, str], tmp_path: Path, keyring_backend: str
) -> None:
    original = _create(wb_env, "twin")
    _set_secret(wb_env, original, "HF_TOKEN", VALUE)
    copy = tmp_path / "elsewhere" / "twin"
    shutil.copytree(original, copy, symlinks=True)  # cp -r: the same meta.name, the same files

    assert _secret_row(wb_env, original, "HF_TOKEN")["is_set"]
    # The identity file travelled with the copy, but the original is still where it was.
    assert (copy / ".project" / ".nvwb-identity").is_file()
    row = _secret_row(wb_env, copy, "HF_TOKEN")
    assert not row["is_set"] and row["value"] is None
    # Setting it in the copy leaves the original's value alone.
    _set_secret(wb_env, copy, "HF_TOKEN", "hf_copy_value_0123456789")
    assert _secret_row(wb_env, original, "HF_TOKEN")["value"] == "hf****IM"


def test_a_hostile_clone_named_after_a_victim_gets_none_of_its_secrets(
    wb_env: dict[str, str], paths: Paths, tmp_path: Path, keyring_backend: str
) -> None:
    victim = _create(wb_env, "rag")
    _set_secret(wb_env, victim, "NVIDIA_API_KEY", VALUE)
    # The attacker's repository copies the victim's spec (meta.name and the secret's name).
    evil = tmp_path / "evil-src"
    evil.mkdir()
    (evil / ".project").mkdir()
    shutil.copy(victim / ".project" / "spec.yaml", evil / ".project" / "spec.yaml")
    _git("init", "-q", cwd=evil)
    _git("add", "-A", cwd=evil)
    _git("commit", "-qm", "rag", cwd=evil)
    cloned = nvwb(wb_env, "clone", "project", str(evil), str(tmp_path / "rag"), "-o", "json")
    assert cloned.code == 0, cloned.err
    clone = Path(cloned.json()["path"])
    assert read_project(clone).name == read_project(victim).name == "rag"

    assert not _secret_row(wb_env, clone, "NVIDIA_API_KEY")["is_set"]
    runtime = open_runtime(local_context(), env=wb_env)
    try:
        session = ProjectSession(runtime, read_project(clone), paths, wb_env)
        _env, secret_env, warnings = session._environment()
    finally:
        runtime.close()
    assert secret_env == {}
    assert any("NVIDIA_API_KEY" in w for w in warnings)


# -- containers and state folders --------------------------------------------------------------


@pytest.fixture
def runtime(wb_env: dict[str, str], test_base_image: str) -> Iterator[ContextRuntime]:
    rt = open_runtime(local_context(), env=wb_env)
    yield rt
    rt.close()


@pytest.mark.docker
@pytest.mark.slow
def test_two_same_named_projects_run_side_by_side_and_close_alone(
    runtime: ContextRuntime, paths: Paths, wb_env: dict[str, str], tmp_path: Path,
    docker_client: Any,
) -> None:  # fmt: skip
    first = make_project(paths, "wbt-twin")
    second = tmp_path / "copy" / "wbt-twin"
    shutil.copytree(first, second, symlinks=True)
    a = ProjectSession(runtime, read_project(first), paths, wb_env)
    b = ProjectSession(runtime, read_project(second), paths, wb_env)
    try:
        assert a.name == b.name == "wbt-twin"
        assert a.container_name != b.container_name
        assert a.state_dir != b.state_dir and a.app_log_dir != b.app_log_dir
        opened_a = a.open()
        opened_b = b.open()
        assert opened_a.container.name != opened_b.container.name
        assert a.state() == "running" and b.state() == "running"
        mounted = {m["Source"] for m in opened_b.container.attrs["Mounts"] if m["Type"] == "bind"}
        assert str(second) in mounted and str(first) not in mounted
        assert b.close()
        assert a.state() == "running"  # closing the copy leaves the original running
    finally:
        for session in (a, b):
            session.close()


# -- moved, replaced, re-cloned: never silently stranded, never handed over ---------------------


def test_a_moved_project_is_refused_until_the_user_says_it_moved_then_keeps_its_secrets(
    wb_env: dict[str, str], tmp_path: Path, keyring_backend: str
) -> None:
    original = _create(wb_env, "mover")
    _set_secret(wb_env, original, "HF_TOKEN", VALUE)
    moved = tmp_path / "moved" / "mover"
    moved.parent.mkdir()
    original.rename(moved)  # mv: the same folder (inode) at a new path

    refused = nvwb(wb_env, "list", "environment-variables", cwd=moved)
    assert refused.code == 10, refused.out
    assert str(original) in refused.err and "same folder, moved" in refused.err
    assert f"--moved-from {original}" in refused.err and "--new-identity" in refused.err

    rebound = nvwb(wb_env, "update", "project", "--moved-from", str(original), cwd=moved)
    assert rebound.code == 0, rebound.err
    assert _secret_row(wb_env, moved, "HF_TOKEN")["value"] == "hf****IM"


def test_the_identity_file_stays_out_of_git_and_out_of_links(
    wb_env: dict[str, str], tmp_path: Path, keyring_backend: str
) -> None:
    project = _create(wb_env, "tidy")
    _set_secret(wb_env, project, "HF_TOKEN", VALUE)
    identity_file = project / ".project" / ".nvwb-identity"
    assert identity_file.is_file() and identity_file.stat().st_mode & 0o077 == 0
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored=no"],
        cwd=project, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert ".nvwb-identity" not in status.stdout
    # A repository whose .project is a link (to a victim's, say) is refused, nothing written.
    victim_dot_project = project / ".project"
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / ".project").symlink_to(victim_dot_project)
    before = identity_file.read_text()
    result = nvwb(wb_env, "list", "environment-variables", cwd=linked)
    # Refused before anything is read through the link (the spec reader or the identity check).
    assert result.code != 0 and "link" in result.err
    assert identity_file.read_text() == before


def test_a_copy_cannot_take_the_identity_of_a_project_that_is_still_there(
    wb_env: dict[str, str], tmp_path: Path, keyring_backend: str
) -> None:
    original = _create(wb_env, "kept")
    _set_secret(wb_env, original, "HF_TOKEN", VALUE)
    copy = tmp_path / "copy" / "kept"
    shutil.copytree(original, copy, symlinks=True)
    refused = nvwb(wb_env, "update", "project", "--moved-from", str(original), cwd=copy)
    assert refused.code == 10 and "is a copy" in refused.err
    assert not _secret_row(wb_env, copy, "HF_TOKEN")["is_set"]


def test_a_folder_replaced_at_a_registered_path_gets_nothing_until_the_user_decides(
    wb_env: dict[str, str], paths: Paths, tmp_path: Path, keyring_backend: str
) -> None:
    victim = _create(wb_env, "rag")
    _set_secret(wb_env, victim, "NVIDIA_API_KEY", VALUE)
    spec = (victim / ".project" / "spec.yaml").read_text()
    shutil.rmtree(victim)  # removed by hand, and another repository put at the same path
    (victim / ".project").mkdir(parents=True)
    (victim / ".project" / "spec.yaml").write_text(spec)

    refused = nvwb(wb_env, "list", "environment-variables", "-o", "json", cwd=victim)
    assert refused.code == 10 and "was replaced" in refused.err
    assert refused.json()["error"]["code"] == "identity_unclear"
    # The same project restored (from a backup, say): the user says so, and it keeps its secrets.
    restored = nvwb(wb_env, "update", "project", "--moved-from", str(victim), cwd=victim)
    assert restored.code == 0, restored.err
    assert _secret_row(wb_env, victim, "NVIDIA_API_KEY")["is_set"]
    shutil.rmtree(victim)  # and once more, this time another project
    (victim / ".project").mkdir(parents=True)
    (victim / ".project" / "spec.yaml").write_text(spec)
    assert nvwb(wb_env, "list", "environment-variables", cwd=victim).code == 10
    assert nvwb(wb_env, "update", "project", "--new-identity", cwd=victim).code == 0
    assert not _secret_row(wb_env, victim, "NVIDIA_API_KEY")["is_set"]
    # The old identity is retired, not lost: the same path can still claim it explicitly.
    back = nvwb(wb_env, "update", "project", "--moved-from", str(victim), cwd=victim)
    assert back.code == 0, back.err
    assert _secret_row(wb_env, victim, "NVIDIA_API_KEY")["is_set"]


def test_a_same_named_clone_after_the_original_is_gone_is_asked_about(
    wb_env: dict[str, str], tmp_path: Path, keyring_backend: str
) -> None:
    original = _create(wb_env, "agent")
    _set_secret(wb_env, original, "HF_TOKEN", VALUE)
    elsewhere = tmp_path / "other" / "agent"
    # Cloned again with git: the same files, but not the identity file git never carries.
    shutil.copytree(original, elsewhere, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    (elsewhere / ".project" / ".nvwb-identity").unlink()
    shutil.rmtree(original)  # the original went; nothing says the new folder is it
    refused = nvwb(wb_env, "list", "environment-variables", cwd=elsewhere)
    assert refused.code == 10 and "also named 'agent'" in refused.err
    assert nvwb(wb_env, "update", "project", "--new-identity", cwd=elsewhere).code == 0
    assert not _secret_row(wb_env, elsewhere, "HF_TOKEN")["is_set"]
    # Answered once: a later look-alike of that name is not held up by the retired identity.
    third = tmp_path / "third" / "agent"
    shutil.copytree(elsewhere, third, symlinks=True)
    assert not _secret_row(wb_env, third, "HF_TOKEN")["is_set"]


def test_update_project_says_what_it_needs(wb_env: dict[str, str]) -> None:
    project = _create(wb_env, "asks")
    none = nvwb(wb_env, "update", "project", cwd=project)
    assert none.code == 2 and "--moved-from OLD_PATH, --new-identity" in none.err
    both = nvwb(wb_env, "update", "project", "--new-identity", "--claim-name-secrets", cwd=project)
    assert both.code == 2 and "not --new-identity and --claim-name-secrets" in both.err
    already = nvwb(wb_env, "update", "project", "--new-identity", cwd=project)
    assert already.code == 10 and "already has its own identity" in already.err
    unknown = nvwb(wb_env, "update", "project", "--moved-from", "/no/such/place", cwd=project)
    assert unknown.code == 4 and "/no/such/place" in unknown.err


def test_a_damaged_register_is_an_error_not_a_fresh_start(
    wb_env: dict[str, str], paths: Paths, keyring_backend: str
) -> None:
    project = _create(wb_env, "reg")
    _set_secret(wb_env, project, "HF_TOKEN", VALUE)
    register = paths.state_dir / "project-ids.json"
    before = register.read_text()
    register.write_text("{not json")
    result = nvwb(wb_env, "list", "environment-variables", cwd=project)
    assert result.code == 1 and "project-ids.json is damaged" in result.err
    assert register.read_text() == "{not json"  # left for the user to restore
    register.write_text(before)
    assert nvwb(wb_env, "list", "environment-variables", cwd=project).code == 0


# -- secrets stored under the name by an earlier version -------------------------------------


def test_name_keyed_secrets_are_moved_only_by_an_explicit_claim(
    wb_env: dict[str, str], tmp_path: Path, keyring_backend: str
) -> None:
    from workbench.secrets import SecretStore, name_secret_key

    store = SecretStore(env=wb_env)
    project = _create(wb_env, "legacy")
    # What an earlier version left: the value under the name, the variable in the spec.
    nvwb(wb_env, "create", "environment-variable", "HF_TOKEN", "-", "--is-sensitive",
         cwd=project, stdin="placeholder-0123456789\n")  # fmt: skip
    nvwb(wb_env, "delete", "environment-variable", "HF_TOKEN", cwd=project)
    spec = project / ".project" / "spec.yaml"
    spec.write_text(spec.read_text().replace("secrets: []", "secrets:\n    - variable: HF_TOKEN"))
    store.set(name_secret_key("legacy", "HF_TOKEN"), VALUE)

    listed = nvwb(wb_env, "list", "environment-variables", cwd=project)
    assert "--claim-name-secrets" in listed.out and "HF_TOKEN" in listed.out
    assert not _secret_row(wb_env, project, "HF_TOKEN")["is_set"]  # never found by name

    asked = nvwb(wb_env, "update", "project", "--claim-name-secrets", cwd=project)
    assert asked.code == 130 and "--yes" in asked.err  # no terminal to ask on: nothing moved
    assert store.get(name_secret_key("legacy", "HF_TOKEN")) == VALUE
    claimed = nvwb(
        wb_env, "update", "project", "--claim-name-secrets", "--yes", "-o", "json", cwd=project
    )
    assert claimed.code == 0, claimed.err
    assert claimed.json()["moved"] == ["HF_TOKEN"]
    assert _secret_row(wb_env, project, "HF_TOKEN")["value"] == "hf****IM"
    assert store.get(name_secret_key("legacy", "HF_TOKEN")) is None  # moved, not copied

    # A same-named project finds nothing left to claim.
    other = tmp_path / "other" / "legacy"
    shutil.copytree(project, other, symlinks=True)
    nothing = nvwb(wb_env, "update", "project", "--claim-name-secrets", "--yes", cwd=other)
    assert nothing.code == 4


# -- delete ----------------------------------------------------------------------------------


def test_deleting_a_project_drops_its_identity_and_its_secrets(
    wb_env: dict[str, str], paths: Paths, keyring_backend: str
) -> None:
    from workbench.identity import peek
    from workbench.secrets import SecretStore, project_secret_key

    project = _create(wb_env, "gone")
    _set_secret(wb_env, project, "HF_TOKEN", VALUE)
    project_id = peek(paths, project)
    assert project_id is not None
    assert nvwb(wb_env, "delete", "project", "gone", "--yes").code == 0
    assert SecretStore(env=wb_env).get(project_secret_key(project_id, "HF_TOKEN")) is None
    # A new project of that name is new: no question, no old secret.
    again = _create(wb_env, "gone")
    assert peek(paths, again) not in (None, project_id)


# -- the context: leftovers of name-keyed versions, containers of other projects ----------------


@pytest.mark.docker
@pytest.mark.slow
def test_a_container_of_another_identity_under_this_name_is_refused_and_left_alone(
    runtime: ContextRuntime, paths: Paths, wb_env: dict[str, str], docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    from workbench.errors import ConflictError

    root = make_project(paths, "wbt-squat")
    session = ProjectSession(runtime, read_project(root), paths, wb_env)
    squatter = docker_client.containers.run(
        test_base_image, ["sleep", "300"], name=session.container_name, detach=True,
        labels={"workbench.project": "wbt-squat", "workbench.project-id": "00000000"},
    )  # fmt: skip
    try:
        with pytest.raises(ConflictError) as caught:
            session.open()
        assert "belongs to project identity 00000000" in caught.value.message
        with pytest.raises(ConflictError):
            session.close()
        squatter.reload()
        assert squatter.status == "running"  # neither replaced nor stopped
    finally:
        squatter.remove(force=True)


@pytest.mark.docker
@pytest.mark.slow
def test_what_a_name_keyed_version_left_is_pointed_out_never_used_or_removed(
    runtime: ContextRuntime, paths: Paths, wb_env: dict[str, str], docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    root = make_project(paths, "wbt-old")
    old = docker_client.containers.run(
        test_base_image, ["sleep", "300"], name="project-wbt-old", detach=True,
        labels={"workbench.project": "wbt-old"},
    )  # fmt: skip
    session = ProjectSession(runtime, read_project(root), paths, wb_env)
    try:
        opened = session.open()
        assert opened.container.name == session.container_name != "project-wbt-old"
        assert any("project-wbt-old" in w and "no longer used" in w for w in opened.warnings)
        old.reload()
        assert old.status == "running"
    finally:
        session.close()
        old.remove(force=True)


# -- the service -------------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_service_keeps_same_named_projects_apart(
    wb_env: dict[str, str], paths: Paths, tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    from tests.integration.test_container_support import project_containers
    from tests.support.service_env import FAST, service_env
    from tests.support.workbench_service import holder

    first = make_project(paths, "wbt-svc-twin")
    second = tmp_path / "copy" / "wbt-svc-twin"
    shutil.copytree(first, second, symlinks=True)
    env_iter = service_env({**wb_env, **FAST, "NVWB_SERVICE_IDLE_EXIT": "30"})
    env = next(env_iter)
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
            for root in (first, second):
                opened = nvwb(env, "open", "-o", "json", cwd=root)
                assert opened.code == 0, opened.err
            names = {c.name for c in project_containers(docker_client, "wbt-svc-twin")}
            assert len(names) == 2
            closed = nvwb(env, "close", "-o", "json", cwd=second)
            assert closed.json()["closed"] is True
            (left,) = project_containers(docker_client, "wbt-svc-twin")
            assert left.status == "running"
            assert left.labels["workbench.project-path"] == str(first)
            status = nvwb(env, "list", "apps", "-o", "json", cwd=first)
            assert status.code == 0, status.err
            assert nvwb(env, "close", cwd=first).code == 0
            assert not project_containers(docker_client, "wbt-svc-twin")
    finally:
        for container in project_containers(docker_client, "wbt-svc-twin"):
            container.remove(force=True)
        next(env_iter, None)


# -- a remote context ------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.sshd
@pytest.mark.slow
def test_same_named_projects_have_their_own_folders_on_a_remote(
    fresh_sshd: Any, paths: Paths, wb_env: dict[str, str], tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    from tests.integration.test_container_support import remove_container, ssh_context

    remote_dir = tmp_path / "remote-workbench"
    old_folder = remote_dir / "projects" / "wbt-rtwin"  # where a name-keyed version copied it
    old_folder.mkdir(parents=True)
    first = make_project(paths, "wbt-rtwin")
    second = tmp_path / "copy" / "wbt-rtwin"
    shutil.copytree(first, second, symlinks=True)
    (second / "code" / "only-in-the-copy.txt").write_text("mine\n")
    runtime = open_runtime(ssh_context(fresh_sshd, remote_dir), env=wb_env)
    sessions = [
        ProjectSession(runtime, read_project(root), paths, wb_env) for root in (first, second)
    ]
    try:
        opened = [session.open() for session in sessions]
        a, b = (Path(session.project_source()) for session in sessions)
        assert a != b and a.parent == b.parent == remote_dir / "projects"
        assert (b / "code" / "only-in-the-copy.txt").is_file()
        assert not (a / "code" / "only-in-the-copy.txt").exists()
        assert not (old_folder / "code").exists()  # the old folder is neither used ...
        assert old_folder.is_dir()  # ... nor removed, only pointed out
        assert any(str(old_folder) in w and "no longer used" in w for w in opened[0].warnings)
    finally:
        for session in sessions:
            session.close()
        runtime.close()
        remove_container(docker_client, "wbt-rtwin")


def test_editing_meta_name_keeps_the_identity_and_the_names_built_from_it(
    wb_env: dict[str, str], paths: Paths
) -> None:
    from workbench.identity import identify

    project = _create(wb_env, "before")
    first = identify(paths, read_project(project))
    spec = project / ".project" / "spec.yaml"
    spec.write_text(spec.read_text().replace("name: before", "name: after", 1))
    again = identify(paths, read_project(project))
    assert again.name == "after"  # shown as it is now
    assert (again.id, again.key) == (first.id, first.key) == (first.id, f"before-{first.id}")
