"""The app's "check connection" on a slurm context asks the cluster, through its login node.

No allocation is needed: the check reaches the login node (not a compute node, which exists only
while an allocation runs) and asks ``sinfo`` about the context's partition.
"""

from __future__ import annotations

import pytest

from tests.integration.slurm.test_provider import slurm_context
from tests.support.slurm import PARTITION, SlurmCluster
from tests.support.sshd import SshServer
from ui.connection_check import check_connection
from workbench.errors import ContextError
from workbench.ssh import RejectUnknown


def no_passphrase(path: object) -> None:
    return None


def test_the_check_asks_the_cluster_about_the_partition(
    slurm: SlurmCluster, login: SshServer, wb_env: dict[str, str]
) -> None:
    said = check_connection(slurm_context(login), wb_env, RejectUnknown(), no_passphrase)
    assert f"partition {PARTITION}: up" in said
    assert "1 node" in said
    assert slurm.jobs() == []  # nothing was queued to check


def test_a_partition_the_cluster_does_not_have_is_named_with_those_it_has(
    slurm: SlurmCluster, login: SshServer, wb_env: dict[str, str]
) -> None:
    ctx = slurm_context(login, partition="gpux")
    with pytest.raises(ContextError) as err:
        check_connection(ctx, wb_env, RejectUnknown(), no_passphrase)
    assert "has no partition 'gpux'" in str(err.value)
    assert err.value.hint is not None and PARTITION in err.value.hint
