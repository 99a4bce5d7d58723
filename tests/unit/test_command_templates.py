"""Command templates: no value is ever read by a shell, and no secret is typed in.

Templates run under ``/bin/sh -c``. A context field's value (``{workbench_dir}``, ``{hostname}``)
must come out as that exact text wherever the placeholder sits (bare, in double quotes, in single
quotes, inside ``$(...)``), so a value holding ``$(...)`` never runs. Placeholders are checked when
the context is created. A secret typed into a template is refused however it is quoted, and
neither a rendered command nor a template is written to a log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.support.cli import nvwb
from workbench.errors import CommandFailed, InvalidValueError
from workbench.kinds import provider_for
from workbench.registry import Context

ENV = {"PATH": "/usr/bin:/bin"}


def command_context(**fields: object) -> Context:
    values: dict[str, object] = {
        "name": "cloud-1",
        "kind": "command",
        "start_command": "true",
        "stop_command": "true",
        "status_command": "echo running",
    }
    values.update(fields)
    return Context(**values)  # type: ignore[arg-type]


HOSTILE = [
    "$(touch {pwned})",
    "`touch {pwned}`",
    "'; touch {pwned}; '",
    '"; touch {pwned}; "',
    'x\\"; touch {pwned}; \\"',
    "$HOME and * and a  b",
]
PLACES = [
    ("bare", "printf %s {workbench_dir} > {out}", "{v}"),
    ("double quotes", 'printf %s "{workbench_dir}" > {out}', "{v}"),
    ("double quotes, inside text", 'printf %s "dir={workbench_dir}/x" > {out}', "dir={v}/x"),
    ("single quotes", "printf %s '{workbench_dir}' > {out}", "{v}"),
    ("single quotes, inside text", "printf %s 'a {workbench_dir} b' > {out}", "a {v} b"),
    ("in $(...)", "printf %s $(printf %s {workbench_dir}) > {out}", None),  # split, never run
    ("in quoted $(...)", 'printf %s "$(printf %s "{workbench_dir}")" > {out}', "{v}"),
    ("concatenated", "printf %s x{workbench_dir}y > {out}", "x{v}y"),
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(("where", "template", "expected"), PLACES, ids=[p[0] for p in PLACES])
def test_a_value_is_never_run_wherever_its_placeholder_sits(
    tmp_path: Path, value: str, where: str, template: str, expected: str | None
) -> None:
    pwned = tmp_path / "pwned"
    out = tmp_path / "out"
    hostile = value.format(pwned=pwned)
    start = template.replace("{out}", str(out))
    ctx = command_context(start_command=start, workbench_dir=hostile)
    provider_for(ctx, ENV).start()
    assert not pwned.exists(), f"{where}: the value ran"
    written = out.read_text()
    if expected is not None:
        assert written == expected.replace("{v}", hostile)
    # unquoted inside $(...) the shell splits the output into words, as it would any output


def test_the_rendered_command_holds_no_value(tmp_path: Path) -> None:
    ctx = command_context(hostname="box.example", start_command="connect {hostname}")
    from contexts.command import render

    assert "box.example" not in render(ctx.start_command or "", ctx, "start_command")


@pytest.mark.parametrize(
    ("field", "template", "why"),
    [
        ("status_command", "cloud status {instance_id}", "instance_id"),
        ("status_command", "cloud status {hostname}", "hostname"),  # this context has none
        ("start_command", "cloud start {name!r}", "format"),
        ("start_command", "cloud start {}", "name"),
        ("start_command", "cloud start {name", "template"),
        ("stop_command", "echo 'unterminated", "unterminated"),
        ("stop_command", 'echo "unterminated', "unterminated"),
        ("stop_command", "echo $(date", "unterminated"),
        ("start_command", "echo `echo {name}`", "backticks"),
        ("start_command", "echo ${{X:-{name}}}", "${...}"),
        ("start_command", "echo ${name}", "'$' right before"),
    ],
)
def test_bad_templates_are_refused_when_the_context_is_created(
    field: str, template: str, why: str
) -> None:
    with pytest.raises(InvalidValueError) as info:
        command_context(**{field: template})
    assert info.value.field == field
    assert why in str(info.value)


def test_create_context_refuses_an_unknown_placeholder_and_writes_nothing(
    wb_env: dict[str, str],
) -> None:
    result = nvwb(
        wb_env,
        "create",
        "context",
        "cloud-1",
        "--type",
        "command",
        "--start-command",
        "cloud start {name}",
        "--stop-command",
        "cloud stop {name}",
        "--status-command",
        "cloud status {instance}",
        "-o",
        "json",
    )
    assert result.code == 2, result.out
    assert result.json()["error"]["field"] == "status_command"
    listed = nvwb(wb_env, "list", "contexts", "-o", "json")
    assert [c["name"] for c in listed.json()] == ["local"]


def test_neither_a_template_nor_a_value_reaches_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = command_context(
        hostname="box-7f3a.example",
        start_command="echo starting {hostname} >/dev/null",
        stop_command="echo stopping {hostname} >&2; exit 3",
    )
    provider = provider_for(ctx, ENV)
    with caplog.at_level(logging.DEBUG):
        provider.start()
        with pytest.raises(CommandFailed) as info:
            provider.stop()
    assert "box-7f3a" not in caplog.text and "echo" not in caplog.text
    assert "start_command" in caplog.text  # what ran is still said
    assert "box-7f3a" not in info.value.command
    assert info.value.exit_status == 3


SECRET_BYPASSES = [
    "API_KEY='sk-proj-abcdefghijklmnop123456' ./start.sh",
    'API_KEY="sk-proj-abcdefghijklmnop123456" ./start.sh',
    "export API_KEY=abcdef0123456789; ./start.sh",
    "export 'API_KEY=abcdef0123456789'; ./start.sh",
    "env CLOUD_TOKEN=abcdef0123456789 ./start.sh",
    "API_TOKEN=abcdef0123456789 ./start.sh",
    "start --password=correcthorse",
    "start --password='correcthorse'",
    "start '--password=correcthorse'",
    "start --api-key 'abcdef0123456789'",
    'start --api-key "abcdef0123456789"',
    "brev-start --token abcdef0123456789",
    "curl -H 'Authorization: Bearer abcdef0123456789' https://api.example/start",
    'curl -H "Authorization: Bearer abcdef0123456789" https://api.example/start',
    "curl -H Authorization:Bearer\\ abcdef0123456789 https://api.example/start",
    "curl -H 'authorization: token abcdef0123456789' https://api.example/start",
    "curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA==' https://api.example",
    "curl -H 'X-API-Key: abcdef0123456789' https://api.example/start",
    "curl -H 'PRIVATE-TOKEN: abcdef0123456789' https://gitlab.example/api",
    "curl https://admin:hunter2hunter@api.example/start",
    "curl 'https://api.example/start?api_key=abcdef0123456789'",
    'curl -d \'{{"token": "abcdef0123456789"}}\' https://api.example/start',
    "echo $(curl -H 'Authorization: Bearer abcdef0123456789' https://x)",
    "cloud start --key nvapi-abcdefghijklmnopqrstuvwxyz0123456789",
    "cloud start --key sk-ant-api03-abcdefghijklmnopqrstuvwx",
    "gh api -H x ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "hf download --x hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    "aws --x AKIAIOSFODNN7EXAMPLE ec2 start-instances",
    "glab --x glpat-abcdefghij0123456789",
    "slack --x xoxb-1234567890-abcdefghijklmnop",
    "cloud --x eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijk",
    "gcloud --x AIzaSyA1234567890abcdefghijklmnopqrstuv",
    "gh --x github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    "echo '-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXk' > k",
]


@pytest.mark.parametrize("template", SECRET_BYPASSES)
def test_a_literal_secret_is_refused_however_it_is_written(template: str) -> None:
    with pytest.raises(InvalidValueError) as info:
        command_context(start_command=template)
    assert info.value.field == "start_command"
    assert "secret" in info.value.reason
    assert "abcdef0123456789" not in str(info.value)  # the message does not repeat it


@pytest.mark.parametrize("template", SECRET_BYPASSES[:4])
def test_the_idle_stop_command_is_held_to_the_same_check(template: str) -> None:
    with pytest.raises(InvalidValueError) as info:
        command_context(stop_command_on_idle=template)
    assert info.value.field == "stop_command_on_idle"


@pytest.mark.parametrize(
    "template",
    [
        "cloud start --token $CLOUD_TOKEN",
        'cloud start --token "$CLOUD_TOKEN"',
        "cloud start --token=${{CLOUD_TOKEN}}",
        'API_TOKEN="$TOKEN" ./start.sh',
        "export API_KEY=$(pass show cloud/api-key); ./start.sh",
        'curl -H "Authorization: Bearer $TOKEN" https://api.example/start',
        "curl -H 'Authorization: Bearer '\"$TOKEN\" https://api.example/start",
        "aws secretsmanager get-secret-value --secret-id prod",
        "gcloud compute instances start my-vm --zone us-east1-b",
        "aws ec2 start-instances --instance-ids i-0abc123def4567890 --region us-east-1",
        "cloud start --private-key ~/.ssh/id_ed25519 {name}",
        "GOOGLE_APPLICATION_CREDENTIALS=/home/me/sa.json gcloud compute instances start x",
        "cloud start --token-file ~/.config/cloud/token",
        "echo running  # password: see the wiki",
        "sudo -n shutdown -h now",
        "curl https://api.example/start/{name}",
    ],
)
def test_secret_references_and_ordinary_commands_are_fine(template: str) -> None:
    assert command_context(start_command=template).start_command == template


def test_a_refused_secret_in_contexts_json_is_reported_without_its_value(
    wb_env: dict[str, str], tmp_path: Path
) -> None:
    config = Path(wb_env["NVWB_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    entry = {
        "name": "c",
        "kind": "command",
        "start_command": "API_KEY='sk-proj-abcdefghijklmnop123456' ./start.sh",
        "stop_command": "s",
        "status_command": "t",
    }
    (config / "contexts.json").write_text(json.dumps({"version": 1, "contexts": {"c": entry}}))
    result = nvwb(wb_env, "list", "contexts")
    assert result.code == 3
    assert "start_command" in result.err and "sk-proj" not in result.err
