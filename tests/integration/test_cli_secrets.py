"""Sensitive environment variables: the value lives only in the real OS keyring."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import nvwb


def test_a_secret_goes_to_the_keyring_and_is_listed_masked(wb_env, keyring_backend):
    created = nvwb(
        wb_env, "create", "project", "sec", "--base-environment-id", "debian-test", "-o", "json"
    )
    project = Path(created.json()["path"])
    value = "hf_0123456789abcdefSECRET"
    result = nvwb(
        wb_env,
        "create",
        "environment-variable",
        "HF_TOKEN",
        "-",
        "--is-sensitive",
        cwd=project,
        stdin=value + "\n",
    )
    assert result.code == 0, result.err
    assert value not in result.out
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert value not in path.read_text(errors="ignore"), path
    for path in Path(wb_env["HOME"]).rglob("*"):  # config, state: no copy anywhere on disk
        if path.is_file() and "keyring" not in str(path):
            assert value.encode() not in path.read_bytes(), path
    assert "HF_TOKEN" in (project / ".project" / "spec.yaml").read_text()

    from workbench.identity import identify
    from workbench.paths import Paths
    from workbench.projects import read_project
    from workbench.secrets import SecretStore, project_secret_key

    key = project_secret_key(identify(Paths.from_env(wb_env), read_project(project)).id, "HF_TOKEN")
    assert key.startswith("project-id/") and "/sec/" not in key
    assert SecretStore(env=wb_env).get(key) == value
    rows = nvwb(wb_env, "list", "environment-variables", "-o", "json", cwd=project).json()
    secret = next(r for r in rows if r["name"] == "HF_TOKEN")
    assert secret["is_sensitive"] and secret["is_set"] and secret["value"] != value
    assert "****" in secret["value"]

    assert nvwb(wb_env, "delete", "environment-variable", "HF_TOKEN", cwd=project).code == 0
    assert SecretStore(env=wb_env).get(key) is None
    assert "HF_TOKEN" not in (project / ".project" / "spec.yaml").read_text()


def test_a_sensitive_value_on_the_command_line_is_refused_and_nothing_is_stored(
    wb_env, keyring_backend
):
    created = nvwb(
        wb_env, "create", "project", "argv", "--base-environment-id", "debian-test", "-o", "json"
    )
    project = Path(created.json()["path"])
    spec_before = (project / ".project" / "spec.yaml").read_text()
    value = "hf_visible_in_ps_0123456789"
    result = nvwb(
        wb_env, "create", "environment-variable", "HF_TOKEN", value, "--is-sensitive", cwd=project
    )
    assert result.code == 2, result.out  # a usage error
    assert "HF_TOKEN" in result.err and "stdin" in result.err and "-" in result.err
    assert value not in result.err and value not in result.out
    assert (project / ".project" / "spec.yaml").read_text() == spec_before
    rows = nvwb(wb_env, "list", "environment-variables", "-o", "json", cwd=project).json()
    assert not any(r["name"] == "HF_TOKEN" for r in rows)
