"""The project window's Jobs pane against the real cluster: it lists the project's jobs with the
scheduler's words, shows a job's output and cancels one; on a context without batch jobs it says
so. The jobs here never need the project's image: one waits in the queue behind a job that holds
every CPU, one fails at once for want of the image (its output says so).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from contexts.slurm_jobs import SlurmJobs
from tests.integration.slurm.test_provider import slurm_context
from tests.integration.test_container_support import make_project, register
from tests.support.slurm import CPUS, SlurmCluster
from tests.support.sshd import SshServer
from ui import collector
from ui.panes.jobs_pane import JobsPane
from ui.tasks import TaskRunner
from workbench.identity import identify
from workbench.kinds.jobs import JobRequest
from workbench.paths import Paths
from workbench.projects import Project, read_project

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True, scope="module")
def gui_thread_collector(qapp) -> None:  # type: ignore[no-untyped-def]
    collector.install(qapp)


@pytest.fixture
def project(paths: Paths, login: SshServer, tmp_path: Path) -> Project:
    workbench_dir = str(tmp_path / "cluster-home" / ".nvwb")
    register(paths, slurm_context(login, workbench_dir=workbench_dir))
    return read_project(make_project(paths, "wbt-pane"))


@pytest.fixture
def runner(qapp) -> Iterator[TaskRunner]:  # type: ignore[no-untyped-def]
    tasks = TaskRunner(max_threads=2)
    yield tasks
    tasks.close()


def submit(env: dict[str, str], paths: Paths, project: Project, name: str, *command: str) -> None:
    from workbench.registry import Registry

    jobs = SlurmJobs(Registry.load(paths).get("hpc"), env)
    try:
        key = identify(paths, project).key
        jobs.submit(
            JobRequest(
                name=name,
                project_name=project.name,
                project_key=key,
                project_dir=str(paths.projects_dir / "nowhere"),
                mount_target="/project/",
                image="project-wbt-pane:missing",
                command=command,
            )
        )
    finally:
        jobs.close()


def pane_for(project: Project, paths: Paths, env: dict[str, str], runner: TaskRunner, context: str):  # type: ignore[no-untyped-def]
    return JobsPane(project=project, paths=paths, env=env, runner=runner, context=lambda: context)


def rows(pane: JobsPane) -> dict[str, list[str]]:
    table = pane.table
    found = {}
    for row in range(table.rowCount()):
        cells = [table.item(row, column).text() for column in range(table.columnCount())]
        found[cells[0]] = cells
    return found


def test_the_pane_lists_shows_output_and_cancels(
    qtbot, wb_env: dict[str, str], paths: Paths, project: Project, slurm: SlurmCluster,
    runner: TaskRunner,
) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    submit(wb_env, paths, project, "broken", "true")  # fails: the image is nowhere
    qtbot.waitUntil(lambda: not [j for j in slurm.jobs() if "broken" in j["name"]], timeout=60000)
    blocker = slurm.submit(f"--ntasks={CPUS}", "--output=/dev/null", "--wrap", "sleep 300")
    qtbot.waitUntil(lambda: slurm.jobs()[0]["state"] == "RUNNING", timeout=20000)
    submit(wb_env, paths, project, "waiting", "sleep", "1")
    qtbot.waitUntil(
        lambda: any("waiting" in j["name"] and j["reason"] == "Resources" for j in slurm.jobs()),
        timeout=20000,
    )

    pane = pane_for(project, paths, wb_env, runner, "hpc")
    qtbot.addWidget(pane)
    pane.show()  # the tab shown: it asks the cluster
    qtbot.waitUntil(lambda: {"broken", "waiting"} <= set(rows(pane)), timeout=30000)
    shown = rows(pane)
    assert shown["waiting"][2] == "PENDING" and "Resources" in shown["waiting"][6]
    assert shown["broken"][2] == "FAILED" and shown["broken"][6] == "exit 3"

    pane.table.selectRow(list(rows(pane)).index("broken"))
    assert not pane.cancel_button.isEnabled()  # it has ended
    pane.logs_button.click()
    qtbot.waitUntil(lambda: "not on" in pane.log.toPlainText(), timeout=30000)
    assert "project-wbt-pane:missing" in pane.log.toPlainText()

    pane.table.selectRow(list(rows(pane)).index("waiting"))
    assert pane.cancel_button.isEnabled()
    pane.cancel_button.click()
    qtbot.waitUntil(lambda: rows(pane).get("waiting", [""] * 3)[2] == "CANCELLED", timeout=60000)
    assert [job["id"] for job in slurm.jobs()] == [blocker]


def test_on_a_context_without_batch_jobs_the_pane_says_so(
    qtbot, wb_env: dict[str, str], paths: Paths, project: Project, runner: TaskRunner
) -> None:  # type: ignore[no-untyped-def]
    pane = pane_for(project, paths, wb_env, runner, "local")
    qtbot.addWidget(pane)
    pane.show()
    assert "Batch jobs run on a slurm context; local runs none" in pane.status.text()
    assert not pane.refresh_button.isEnabled()
    assert pane.table.rowCount() == 0
