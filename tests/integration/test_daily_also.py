"""The smaller commands of AI Workbench's CLI: ``version``, ``list built-in-apps``, ``create app
NAME TYPE --app-class``, ``update environment-variable``, ``list brev instances`` and ``support
create-bundle`` (secrets removed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.support.cli import nvwb
from tests.support.fake_brev import FakeBrev
from workbench import __version__
from workbench.identity import identify
from workbench.paths import Paths
from workbench.projects import Project, create_project, read_project
from workbench.registry import Context, Registry
from workbench.secrets import SecretStore, project_secret_key
from workbench.spec import SpecDocument


@pytest.fixture
def project(paths: Paths, wb_env: dict[str, str]) -> Path:
    return create_project(paths, "wbt-also", "python-basic", env=wb_env).path


def test_version_and_built_in_apps(wb_env: dict[str, str]) -> None:
    assert nvwb(wb_env, "version", "-o", "json").json()["version"] == __version__
    assert __version__ in nvwb(wb_env, "version").out
    types = {row["type"] for row in nvwb(wb_env, "list", "built-in-apps", "-o", "json").json()}
    assert {"jupyterlab", "vs-code", "custom"} <= types


def test_create_app_takes_the_type_and_app_class_as_ai_workbench_spells_them(
    project: Path, wb_env: dict[str, str]
) -> None:
    made = nvwb(wb_env, "-p", str(project), "create", "app", "trainer", "custom",
                "--app-class", "process", "--start-cmd", "python3 train.py")  # fmt: skip
    assert made.code == 0, made.err
    (app,) = [a for a in SpecDocument.load(project / ".project" / "spec.yaml").apps()
              if a.name == "trainer"]  # fmt: skip
    assert app.type == "custom" and app.class_ == "process"
    two = nvwb(wb_env, "-p", str(project), "create", "app", "x", "custom", "--type", "jupyterlab",
               "--start-cmd", "true", "--app-class", "process")  # fmt: skip
    assert two.code == 2 and "two app types" in two.err


def test_update_environment_variable(
    project: Path, wb_env: dict[str, str], paths: Paths, keyring_backend: str
) -> None:
    p = ["-p", str(project)]
    missing = nvwb(wb_env, *p, "update", "environment-variable", "NOPE", "1")
    assert missing.code == 4 and "create environment-variable" in missing.err
    assert nvwb(wb_env, *p, "create", "environment-variable", "MODEL", "llama").code == 0
    updated = nvwb(wb_env, *p, "update", "environment-variable", "MODEL", "mistral")
    assert updated.code == 0, updated.err
    assert "MODEL=mistral" in (project / "variables.env").read_text()
    assert "MODEL=llama" not in (project / "variables.env").read_text()

    made = nvwb(wb_env, *p, "create", "environment-variable", "TOKEN", "-", "--is-sensitive",
                stdin="first-value\n")  # fmt: skip
    assert made.code == 0, made.err
    key = project_secret_key(identify(paths, _read(project)).id, "TOKEN")
    on_argv = nvwb(wb_env, *p, "update", "environment-variable", "TOKEN", "second-value")
    assert on_argv.code == 2 and "command line" in on_argv.err
    assert SecretStore(env=wb_env).get(key) == "first-value"
    from_stdin = nvwb(wb_env, *p, "update", "environment-variable", "TOKEN", "-",
                      stdin="second-value\n")  # fmt: skip
    assert from_stdin.code == 0, from_stdin.err
    assert SecretStore(env=wb_env).get(key) == "second-value"
    assert "second-value" not in (project / "variables.env").read_text()


def _read(root: Path) -> Project:
    return read_project(root)


def test_list_brev_instances(brev: FakeBrev, wb_env: dict[str, str], paths: Paths) -> None:
    brev.create("a100-box", hourly_price=2.5)
    brev.create("spare")
    with Registry.locked(paths) as registry:
        registry.create(Context(name="gpu", kind="brev", brev_instance_name="a100-box"))
    listed = nvwb(brev.env(wb_env), "list", "brev", "instances", "-o", "json")
    assert listed.code == 0, listed.err
    rows = {row["name"]: row for row in listed.json()}
    assert set(rows) == {"a100-box", "spare"}
    assert rows["a100-box"]["status"] == "STOPPED" and rows["a100-box"]["context"] == "gpu"
    assert rows["spare"]["context"] == ""
    no_brev = nvwb({**wb_env, "PATH": "/nonexistent"}, "list", "brev", "instances")
    assert no_brev.code == 6 and "brev" in no_brev.err


def test_support_bundle_holds_logs_and_state_with_secrets_removed(
    project: Path, wb_env: dict[str, str], paths: Paths, keyring_backend: str, tmp_path: Path
) -> None:
    p = ["-p", str(project)]
    secret = "s3cr3t-" + "7" * 20
    assert nvwb(wb_env, *p, "create", "environment-variable", "HF_TOKEN", "-", "--is-sensitive",
                stdin=secret + "\n").code == 0  # fmt: skip
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    (paths.state_dir / "service.log").write_text(
        f"started\nan app said HF_TOKEN is {secret}\n"
        "url http://me:hunter22@example.org/x password=letmein token: abc123def\n"
        "key nvapi-AbCdEfGhIjKlMnOpQrStUv and the end\n"
    )
    kept = paths.state_dir / "projects" / "wbt-also-x" / "local" / "apps" / "web.log"
    kept.parent.mkdir(parents=True)
    kept.write_text(f"Jupyter at http://127.0.0.1:8888/?token={secret}\n")
    made = nvwb(wb_env, "support", "create-bundle", "--path", str(tmp_path / "b.zip"),
                "-o", "json", cwd=tmp_path)  # fmt: skip
    assert made.code == 0, made.err
    bundle = Path(made.json()["bundle"])
    assert bundle.stat().st_mode & 0o777 == 0o600
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        everything = "".join(archive.read(name).decode() for name in names)
    assert "state/service.log" in names and "about.json" in names
    assert "state/projects/wbt-also-x/local/apps/web.log" in names
    assert "project-ids.json" not in " ".join(names)
    for leaked in (secret, "hunter22", "letmein", "abc123def", "nvapi-AbCdEfGhIjKlMnOpQrStUv"):
        assert leaked not in everything, leaked
    assert "an app said HF_TOKEN is [removed]" in everything
    assert "and the end" in everything  # the rest is kept
