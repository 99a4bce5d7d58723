"""The ``nvwb`` command tree, after AI Workbench's own verbs and nouns.

Handlers are named as ``"module:function"`` strings and imported only when their command runs,
so building the parser imports nothing heavy and ``nvwb`` starts fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from workbench import __version__, values
from workbench.cli.output import FORMATS
from workbench.errors import UsageError

MOUNT_TYPES = ("project", "volume", "host", "tmp")
PACKAGE_MANAGERS = ("apt", "pip")
APP_TYPES = ("jupyterlab", "tensorboard", "vs-code", "custom")
APP_CLASSES = ("webapp", "process", "native")


class Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` instead of exiting, so ``main`` stays in-process."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"see '{self.prog} --help'")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise UsageError(message.strip())
        raise _HelpShown(status)


class _HelpShown(Exception):
    """``--help`` or ``--version`` printed its text; ``main`` returns ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On subcommands the defaults are SUPPRESS so a flag given before the verb is not reset.
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument(
        "-c",
        "--context",
        default=default,
        metavar="CONTEXT",
        help="context to act on (else NVWB_CONTEXT, then the last activate)",
    )
    parser.add_argument(
        "-p",
        "--project",
        default=default,
        metavar="PROJECT",
        help="project name or path (else the project holding the cwd)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="table" if top else default,
        help="output format (default: table)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else default,
        help="show tracebacks and debug logs",
    )


Adder = Callable[[argparse.ArgumentParser], None]


def _number(kind: values.IntRange | values.FloatRange | values.TimeLimit) -> Callable[[str], Any]:
    """An argparse ``type`` checking one kind of number of ``workbench.values``; argparse puts
    the flag's name before the message ("argument --grace-period: must be ...")."""

    def convert(text: str) -> Any:
        problem = kind.text_problem(text)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return kind.parse("value", text)

    return convert


class Tree:
    """Builds ``nvwb VERB NOUN`` and single-word commands onto one parser."""

    def __init__(self) -> None:
        self.root = Parser(prog="nvwb", description="Workbench: run AI projects anywhere.")
        _globals(self.root, top=True)
        self.root.add_argument("--version", action="version", version=f"nvwb {__version__}")
        self._verbs = self.root.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
        self._nouns: dict[str, argparse._SubParsersAction[Parser]] = {}
        self._verb_parsers: dict[str, Parser] = {}
        self.leaves: dict[tuple[str, ...], Parser] = {}

    def _common(self) -> Parser:
        common = Parser(add_help=False)
        _globals(common, top=False)
        return common

    def verb(self, verb: str, help: str) -> None:
        p = self._verbs.add_parser(verb, help=help, description=help, parents=[self._common()])
        self._verb_parsers[verb] = p
        self._nouns[verb] = p.add_subparsers(dest="noun", metavar="OBJECT", parser_class=Parser)
        self._nouns[verb].required = True

    def command(self, verb: str, noun: str, handler: str, help: str, *adders: Adder) -> None:
        p = self._nouns[verb].add_parser(
            noun, help=help, description=help, parents=[self._common()]
        )
        p.set_defaults(handler=handler)
        self.leaves[(verb, noun)] = p
        for add in adders:
            add(p)

    def single(self, verb: str, handler: str, help: str, *adders: Adder) -> None:
        p = self._verbs.add_parser(verb, help=help, description=help, parents=[self._common()])
        p.set_defaults(handler=handler)
        self.leaves[(verb,)] = p
        for add in adders:
            add(p)


def _positional(name: str, help: str, **kw: Any) -> Adder:
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument(name, help=help, **kw)

    return add


def _flag(*names: str, **kw: Any) -> Adder:
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument(*names, **kw)

    return add


_YES = _flag("-y", "--yes", action="store_true", help="do not ask for confirmation")
_WIDE = _flag("--wide", action="store_true", help="show more columns")


def _context_options(p: argparse.ArgumentParser, *, create: bool) -> None:
    """The context flags: one per field (``workbench.kinds.fields``), each saying which kinds
    take it, and ``--type`` offering the registered kinds."""
    from workbench.kinds import all_kinds
    from workbench.kinds.fields import CATALOGUE, INFO, SHARED, infer_kind, rules_of

    kinds = all_kinds()
    if create:
        picked = []
        for kind in kinds:
            first = next((rule.name for rule in kind.fields if rule.required), None)
            if first is not None and infer_kind({first}, kinds) is kind:
                flag = "a HOSTNAME" if first == "hostname" else INFO[first].option
                picked.append(f"{kind.name} with {flag}")
        p.add_argument(
            "--type",
            dest="kind",
            choices=[kind.name for kind in kinds],
            default=None,
            help="kind of context (default: " + ", ".join(picked) + ")",
        )
    for info in CATALOGUE:
        text = info.help
        if info.name not in SHARED:
            users = [k.name for k in kinds if any(r.name == info.name for r in rules_of(k))]
            text += " [" + (", ".join(users) or "no kind") + "]"
        options: dict[str, Any] = {"dest": info.attribute, "help": text}
        if info.metavar:
            options["metavar"] = info.metavar
        if info.number is not None:
            options["type"] = _number(info.number)
        p.add_argument(info.option, **options)
    p.add_argument(
        "--host-mount",
        dest="host_mounts",
        action="append",
        metavar="TARGET=FOLDER",
        help="folder on the context's host behind the spec's host mount at TARGET (repeat for "
        "more; TARGET= with no folder removes one)",
    )


def _provision_options(p: argparse.ArgumentParser) -> None:
    """``--KIND-create`` and ``--KIND-type`` for each kind that makes its machines (a cloud's
    GPU instances, ``workbench.kinds.provision``), and the disk size and yes they take."""
    from workbench.kinds import all_kinds

    for kind in all_kinds():
        if kind.provisioner is None:
            continue
        p.add_argument(
            f"--{kind.name}-create",
            dest=f"{kind.name}_create",
            action="store_true",
            help=f"create a new {kind.title} for this context (one of --{kind.name}-type)",
        )
        p.add_argument(
            f"--{kind.name}-type",
            dest=f"{kind.name}_types",
            metavar="TYPE[,TYPE...]",
            help="instance types to try in order ('nvwb list gpu-offers' lists them)",
        )
    p.add_argument(
        "--disk-gb",
        type=_number(values.DISK_GB),
        help="with --KIND-create: the disk, where the type lets it be chosen",
    )
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _offer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu-name", help="GPU name, partial, any case (H100, l40s)")
    p.add_argument("--provider", help="cloud, partial, any case (aws, gcp)")
    p.add_argument("--min-vram", type=_number(values.GPU_MEMORY_GB), metavar="GB",
                   help="GPU memory per GPU at least")  # fmt: skip
    p.add_argument("--min-total-vram", type=_number(values.GPU_MEMORY_GB), metavar="GB",
                   help="GPU memory of all GPUs together at least")  # fmt: skip
    p.add_argument("--min-capability", type=_number(values.CAPABILITY), metavar="CC",
                   help="compute capability at least (8.9: Ada and later)")  # fmt: skip
    p.add_argument("--min-disk", type=_number(values.DISK_GB), metavar="GB",
                   help="disk at least")  # fmt: skip
    p.add_argument("--max-boot-time", type=_number(values.BOOT_MINUTES), metavar="MINUTES",
                   help="boots within that many minutes")  # fmt: skip
    p.add_argument("--max-price", type=_number(values.PRICE_PER_HOUR), metavar="USD",
                   help="dollars an hour at most")  # fmt: skip
    p.add_argument("--fp4", action="store_true", help="only GPUs with FP4 (Blackwell)")
    p.add_argument("--stoppable-only", action="store_true",
                   help="leave out instances that can only be deleted")  # fmt: skip
    p.add_argument("--fits", action="store_true",
                   help="only what runs the project (-p): the GPUs its spec requests")  # fmt: skip
    p.add_argument("--sort", choices=("price", "vram", "boot-time", "price-per-gpu"),
                   default="price", help="order (default: price, cheapest first)")  # fmt: skip
    p.add_argument("--refresh", action="store_true",
                   help="ask the cloud now, not the last minute's answer")  # fmt: skip


def _cost_commands(t: Tree) -> None:
    """Cloud GPUs: their offers, what running machines cost, the monthly budget."""
    cl = "workbench.cli.commands.cloud:"
    t.command("list", "gpu-offers", cl + "list_gpu_offers", "GPU instances a cloud offers now",
              _offer_options)  # fmt: skip
    t.command(
        "list",
        "costs",
        cl + "list_costs",
        "what contexts cost, by day or by context, and the budget",
        _flag("--since", metavar="YYYY-MM-DD", help="from that day on (default: this month)"),
        _flag("--by", choices=("day", "context"), default="day", help="sum by (default: day)"),
    )
    t.command(
        "update",
        "budget",
        cl + "update_budget",
        "set the monthly budget for cloud machines",
        _flag(
            "--monthly-usd",
            type=_number(values.MONTHLY_BUDGET_USD),
            metavar="USD",
            help="dollars a month; notified at 80 %% and 100 %%; 0 removes it",
        ),
        _flag(
            "--stop-idle-over-budget",
            dest="stop_idle",
            action="store_true",
            default=None,
            help="once it is spent, stop at once every context nothing holds",
        ),
        _flag(
            "--no-stop-idle-over-budget",
            dest="stop_idle",
            action="store_false",
            help="only notify once it is spent",
        ),
    )


def _app_options(p: argparse.ArgumentParser) -> None:
    # AI Workbench spells them ``create app NAME TYPE --app-class C``; --type/--class still work.
    p.add_argument(
        "type", nargs="?", choices=APP_TYPES, default=None, help="app type (default custom)"
    )
    p.add_argument(
        "--type", dest="app_type", choices=APP_TYPES, default=None, help=argparse.SUPPRESS
    )
    p.add_argument(
        "--app-class", "--class", dest="app_class", choices=APP_CLASSES, default="webapp"
    )
    p.add_argument(
        "--start-cmd",
        dest="start_command",
        required=True,
        help="command that starts the app in the container",
    )
    p.add_argument("--stop-cmd", dest="stop_command", default="", help="command that stops it")
    p.add_argument(
        "--health-check-cmd",
        dest="health_check_command",
        default="",
        help="command that exits 0 once the app is up",
    )
    p.add_argument(
        "--timeout-seconds",
        type=_number(values.APP_TIMEOUT_SECONDS),
        default=60,
        help="how long the health check may take to pass",
    )
    p.add_argument("--user-msg", default="", help="message shown when the app starts")
    p.add_argument("--logfile-path", default="", help="where the app writes its log")
    p.add_argument("--icon-url", default="")
    p.add_argument(
        "--webapp-port", dest="port", type=_number(values.PORT), help="port the web app listens on"
    )
    p.add_argument("--webapp-url", dest="url", help="URL of the web app")
    p.add_argument("--webapp-url-cmd", dest="url_command", help="command printing the URL")
    p.add_argument(
        "--webapp-autolaunch",
        dest="autolaunch",
        action="store_true",
        help="open the browser when the app starts",
    )
    p.add_argument("--webapp-proxy-trim-prefix", dest="trim_prefix", action="store_true")
    p.add_argument("--process-wait-until-finished", dest="wait_until_finished", action="store_true")


def build_parser() -> Parser:
    return build_tree().root


def build_tree() -> Tree:
    t = Tree()
    for verb, text in [
        ("list", "list contexts, projects, bases, resources, mounts, packages, variables, apps"),
        ("create", "create a context, project, mount, environment variable or app"),
        ("update", "change a context, the project's resources or its identity"),
        ("delete", "delete a context, project, mount, environment variable or app"),
        ("add", "add a package to the project"),
        ("remove", "remove a package from the project"),
        ("clone", "clone a project"),
        ("validate", "check a project spec"),
    ]:
        t.verb(verb, text)

    c = "workbench.cli.commands.contexts:"
    t.command("list", "contexts", c + "list_contexts", "list contexts", _WIDE)
    t.command(
        "create",
        "context",
        c + "create_context",
        "create a context",
        _positional("name", "name of the new context"),
        _positional("hostname", "SSH host name or alias", nargs="?"),
        lambda p: _context_options(p, create=True),
        _provision_options,
    )
    t.command(
        "update",
        "context",
        c + "update_context",
        "change a context's settings",
        _positional("name", "context to change"),
        lambda p: _context_options(p, create=False),
    )
    t.command(
        "delete",
        "context",
        c + "delete_context",
        "delete a context",
        _positional("name", "context to delete"),
        _flag(
            "--delete-instance",
            action="store_true",
            help="delete its machine too (a machine Workbench can delete: a cloud instance)",
        ),
        _YES,
    )

    pr = "workbench.cli.commands.projects:"
    t.command("list", "projects", pr + "list_projects", "list projects")
    t.command("list", "bases", pr + "list_bases", "list base environments")
    t.command(
        "create",
        "project",
        pr + "create_project",
        "create a project",
        _positional("name", "name of the new project"),
        _flag(
            "--base-environment-id",
            "-b",
            dest="base",
            default="python-basic",
            help="base environment from 'nvwb list bases' (default python-basic)",
        ),
        _flag("--description", "-d", default="", help="what the project is"),
    )
    t.command(
        "clone",
        "project",
        pr + "clone_project",
        "clone a project from git",
        _positional("url", "git URL or path of the repository"),
        _positional("path", "where to put it (default: the projects folder)", nargs="?"),
    )
    t.command(
        "delete",
        "project",
        pr + "delete_project",
        "delete a project Workbench created",
        _positional("name", "project name or path"),
        _YES,
    )
    t.command(
        "update",
        "project",
        "workbench.cli.commands.identity:update_project",
        "settle the project's identity on this machine (a moved folder, old secrets)",
        _flag(
            "--moved-from",
            metavar="OLD_PATH",
            help="this folder is the project that was at OLD_PATH: keep its identity and secrets",
        ),
        _flag(
            "--new-identity",
            action="store_true",
            help="this folder is a project of its own: give it a new identity",
        ),
        _flag(
            "--claim-name-secrets",
            action="store_true",
            help="move secrets an earlier version stored under the project's name to it",
        ),
        _YES,
    )
    t.command(
        "validate",
        "project-spec",
        pr + "validate_spec",
        "check a project's spec",
        _positional("path", "spec file or project folder (default: the project)", nargs="?"),
    )

    s = "workbench.cli.commands.spec:"
    t.command("list", "resources", s + "list_resources", "show GPUs and shared memory")
    t.command(
        "update",
        "resources",
        s + "update_resources",
        "change GPUs or shared memory",
        _flag("--gpus", type=_number(values.GPUS), help="GPUs the project requests"),
        _flag(
            "--shared-memory-mb",
            type=_number(values.SHARED_MEMORY_MB),
            help="shared memory for the container",
        ),
    )
    t.command("list", "mounts", s + "list_mounts", "list the project's mounts")
    t.command(
        "create",
        "mount",
        s + "create_mount",
        "add a mount to the project",
        _positional("type", "mount type", choices=MOUNT_TYPES),
        _positional("target", "path in the container"),
        _flag("--description", default=""),
        _flag("--options", default=""),
    )
    t.command(
        "delete",
        "mount",
        s + "delete_mount",
        "remove a mount",
        _positional("target", "path in the container"),
    )
    t.command(
        "create",
        "app",
        s + "create_app",
        "add an app to the project",
        _positional("name", "app name"),
        _app_options,
    )
    t.command("delete", "app", s + "delete_app", "remove an app", _positional("name", "app name"))

    e = "workbench.cli.commands.environment:"
    t.command(
        "list",
        "packages",
        e + "list_packages",
        "list the project's packages",
        _flag("--package-manager", choices=PACKAGE_MANAGERS),
    )
    t.command(
        "add",
        "package",
        e + "add_package",
        "add packages to apt.txt or requirements.txt",
        _positional("manager", "package manager", choices=PACKAGE_MANAGERS),
        _positional("names", "package names (pip: with version specifiers)", nargs="+"),
    )
    t.command(
        "remove",
        "package",
        e + "remove_package",
        "remove packages",
        _positional("manager", "package manager", choices=PACKAGE_MANAGERS),
        _positional("names", "package names", nargs="+"),
    )
    t.command(
        "list",
        "environment-variables",
        e + "list_variables",
        "list variables and secrets (secret values masked)",
    )
    t.command(
        "create",
        "environment-variable",
        e + "create_variable",
        "set a variable (or a secret with --is-sensitive)",
        _positional("name", "variable name"),
        _positional("value", "value, or - to read it from stdin", nargs="?"),
        _flag(
            "--is-sensitive",
            action="store_true",
            help="a secret: the value goes to the OS keyring, never to a file",
        ),
        _flag("--description", default=""),
    )
    t.command(
        "delete",
        "environment-variable",
        e + "delete_variable",
        "remove a variable",
        _positional("name", "variable name"),
    )

    sv = "workbench.cli.commands.service:"
    t.single(
        "activate",
        sv + "activate",
        "start a context if needed and hold it for this shell",
        _positional("name", "context to activate"),
    )
    t.single("deactivate", sv + "deactivate", "release this shell's hold on its context")
    t.single("status", sv + "status", "contexts: state, holders, uptime and cost so far")
    # AI Workbench says `nvwb start jupyterlab` for apps; `start context NAME` is ours.
    t.single(
        "start",
        "workbench.cli.commands.start_stop:start",
        "start an app of the project (or: start context NAME)",
        _positional("target", "app name, or the word 'context'"),
        _positional("name", "with 'context': the context to start", nargs="?"),
        _flag("--no-browser", action="store_true", help="do not open the app's URL"),
        _flag(
            "--port",
            type=_number(values.LOCAL_PORT),
            default=0,
            help="local port for a remote context's forward (default: any free port)",
        ),
    )
    t.single(
        "stop",
        "workbench.cli.commands.start_stop:stop",
        "stop an app of the project (or: stop context NAME, verified)",
        _positional("target", "app name, or the word 'context'"),
        _positional("name", "with 'context': the context to stop", nargs="?"),
        _flag(
            "--force", action="store_true", help="with 'context': end the leases that hold it first"
        ),
    )

    r = "workbench.cli.commands.run:"
    t.command("list", "apps", r + "list_apps", "list the project's apps, their state and URL")
    t.single(
        "build",
        r + "build",
        "build the project's image (only if its inputs changed)",
        _flag(
            "--full-build", action="store_true", help="rebuild every step, ignoring the build cache"
        ),
    )
    t.single(
        "open",
        r + "open_project",
        "open a project on the context: build if needed, copy files, start its container",
        _positional(
            "project_name",
            "project name or path (default: -p or the cwd's)",
            nargs="?",
            metavar="PROJECT",
        ),
        _flag("--full-build", action="store_true", help="rebuild the image from scratch"),
    )
    t.single(
        "close",
        r + "close_project",
        "stop the project's apps and container",
        _positional(
            "project_name",
            "project name or path (default: -p or the cwd's)",
            nargs="?",
            metavar="PROJECT",
        ),
    )
    t.single(
        "logs",
        "workbench.cli.commands.jobs:logs",
        "show an app's output (or: logs job NAME, a batch job's)",
        _positional("app", "app name, or the word 'job'"),
        _positional("name", "with 'job': the job", nargs="?"),
        _flag("--tail", type=_number(values.LOG_LINES), default=None, help="only the last N lines"),
        _flag("--follow", "-f", action="store_true", help="with 'job': until the job ends"),
    )

    _sync_commands(t)
    _job_commands(t)
    _daily_commands(t)
    _cost_commands(t)
    return t


def submit_job_flags(p: argparse.ArgumentParser) -> None:
    """``submit job``'s options; also read by its handler from after NAME (argparse leaves
    everything after the job's name to the command)."""
    p.add_argument("--nodes", type=_number(values.NODES), help="nodes to run on (default 1)")
    p.add_argument(
        "--ntasks-per-node",
        type=_number(values.TASKS_PER_NODE),
        metavar="T",
        help="tasks on each node (default: one per GPU asked for, else one)",
    )
    p.add_argument(
        "--gpus-per-node",
        type=_number(values.GPUS_PER_NODE),
        metavar="G",
        help="GPUs on each node (default: the context's)",
    )
    p.add_argument(
        "--time",
        type=_number(values.TIME_LIMIT),
        metavar="TIME",
        help="the job's time limit (default: the context's, else the partition's)",
    )


def _job_commands(t: Tree) -> None:
    """``nvwb submit|list|cancel job``: batch jobs on a context that runs them (slurm)."""
    j = "workbench.cli.commands.jobs:"
    t.verb("submit", "submit a batch job of the project")
    t.verb("cancel", "cancel a batch job")
    t.command(
        "submit",
        "job",
        j + "submit_job",
        "run COMMAND as a batch job in the project's image (a slurm context)",
        _positional("name", "a name for the job"),
        submit_job_flags,
        _positional(
            "command",
            "[OPTIONS] -- then the command and its arguments",
            nargs=argparse.REMAINDER,
        ),
    )
    t.command("list", "jobs", j + "list_jobs", "list the project's batch jobs")
    t.command(
        "cancel",
        "job",
        j + "cancel_job",
        "cancel a batch job (verified)",
        _positional("name", "the job"),
    )


def _sync_commands(t: Tree) -> None:
    """``nvwb sync ...``: the state of the project's sync and how to settle what it asks."""
    t.verb("sync", "two-way file sync of the project with its context")
    sy = "workbench.cli.commands.sync:"
    t.command(
        "sync",
        "status",
        sy + "status",
        "sync state, last sync, pending changes, conflicts, problems",
    )
    t.command(
        "sync", "conflicts", sy + "conflicts", "paths both sides changed (both versions kept)"
    )
    t.command(
        "sync",
        "resolve",
        sy + "resolve",
        "settle a conflict",
        _positional("path", "the conflicted path, relative to the project"),
        _flag(
            "--keep",
            required=True,
            choices=("local", "remote", "both"),
            help="local/remote: that version everywhere, conflict copies removed; "
            "both: the laptop's at PATH, the remote's kept as its conflict copy",
        ),
    )
    t.command("sync", "pause", sy + "pause", "stop syncing until resume")
    t.command("sync", "resume", sy + "resume", "sync again; changes made meanwhile follow")
    t.command(
        "sync",
        "confirm-deletions",
        sy + "confirm_deletions",
        "after a halt for lost files: they are gone for good, delete them on the other side too",
    )
    t.command(
        "sync",
        "restore",
        sy + "restore",
        "after a halt for lost files: copy them back from the other side",
    )


def _daily_commands(t: Tree) -> None:
    """Daily work in a project: a terminal, an editor, compose, git, and the smaller commands
    AI Workbench has (``version``, ``support create-bundle``, ``list built-in-apps``...)."""
    d = "workbench.cli.commands.daily:"
    t.single(
        "attach",
        d + "attach",
        "an interactive shell in the project's container (held like a window while it runs)",
        _flag("--host", action="store_true", help="a shell on the context's host instead"),
    )
    t.single(
        "open-editor",
        d + "open_editor",
        "open the project in VS Code (or another editor) on its context, over SSH",
        _flag("--editor", choices=("code", "cursor", "zed"), default="code"),
        _flag("--container", action="store_true", help="attach to the running container"),
        _flag("--print", dest="print_only", action="store_true", help="print the command only"),
        _flag("-y", "--yes", action="store_true", help="add the Include line to ~/.ssh/config"),
    )
    t.verb("compose", "the project's compose services (environment.compose_file_path)")
    t.command(
        "compose",
        "up",
        d + "compose_up",
        "start the compose services (the project opened first if needed)",
        _flag("--profile", action="append", metavar="P", help="a compose profile (repeat)"),
        _flag(
            "--secrets-in-environment",
            action="store_true",
            help="allow a secret in a service's definition, where docker inspect shows it",
        ),
    )
    t.command("compose", "down", d + "compose_down", "stop and remove the compose services")
    t.command("compose", "status", d + "compose_status", "each compose service's state")
    t.command(
        "compose",
        "logs",
        d + "compose_logs",
        "the compose services' output",
        _positional("service", "one service (default: all)", nargs="?"),
        _flag("--tail", type=_number(values.LOG_LINES), default=None, help="only the last N lines"),
    )

    g = "workbench.cli.commands.git:"
    t.single(
        "commit",
        g + "commit",
        "commit every change of the project (large files are pointed out first)",
        _flag("-m", "--message", required=True, help="the commit message"),
        _flag(
            "--overrideWarnings",
            dest="override",
            action="store_true",
            help="commit even with large files",
        ),
    )
    t.single(
        "discard",
        g + "discard",
        "throw away uncommitted changes (new files are deleted)",
        _positional("paths", "only these files (default: all)", nargs="*"),
        _YES,
    )
    t.single("fetch", g + "fetch", "fetch from the project's git remote")
    t.single("pull", g + "pull", "pull the branch's upstream (fast-forward only)")
    t.single("push", g + "push", "push the branch to its upstream")
    t.single(
        "publish",
        g + "publish",
        "add a git remote and push the branch to it, as its upstream",
        _positional("remote_url", "the repository's URL (or path)"),
        _flag("--remote", default="origin", help="the remote's name (default origin)"),
    )
    t.single(
        "history",
        g + "history",
        "the branch's last commits",
        _flag("-n", type=_number(values.LOG_LINES), default=20, help="how many (default 20)"),
    )
    t.command("list", "branches", g + "list_branches", "the project's git branches")
    t.command(
        "create",
        "branch",
        g + "create_branch",
        "create a git branch and switch to it",
        _positional("name", "the new branch"),
        _flag("--carry", action="store_true", help="take uncommitted changes to it"),
    )
    t.single(
        "switch-branch",
        g + "switch_branch",
        "switch to a git branch (refused with uncommitted changes)",
        _positional("name", "the branch"),
    )

    o = "workbench.cli.commands.other:"
    t.single("version", o + "version", "Workbench's version and this system")
    t.verb("support", "help for a bug report")
    t.command(
        "support",
        "create-bundle",
        o + "create_bundle",
        "a zip of logs and state for a bug report, secrets removed",
        _flag("--path", metavar="PATH", help="where to write it (default: the cwd)"),
    )
    t.command("list", "built-in-apps", o + "list_built_in_apps", "the app types create app takes")
    t.command(
        "update",
        "environment-variable",
        o + "update_variable",
        "change a variable's value (or a secret's, from stdin or a prompt)",
        _positional("name", "variable name"),
        _positional("value", "value, or - to read it from stdin", nargs="?"),
    )
    t.command(
        "list",
        "brev",
        o + "list_brev",
        "your Brev account's instances ('list brev instances')",
        _positional("what", "what to list", choices=("instances",)),
    )


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; flags may sit anywhere, even between positionals.

    argparse fills an optional positional (``create context NAME [HOSTNAME]``) at the first
    positional it meets, so ``NAME --flag HOSTNAME`` would leave HOSTNAME over. The leaf command
    is then parsed again with ``parse_intermixed_args``, which reads positionals across flags.
    """
    tree = build_tree()
    args, extras = tree.root.parse_known_args(argv)
    if not extras:
        return args
    key = tuple(k for k in (getattr(args, "verb", None), getattr(args, "noun", None)) if k)
    leaf = tree.leaves.get(key)
    if leaf is None:
        tree.root.error(f"unrecognized arguments: {' '.join(extras)}")
    rest = list(argv)
    for word in key:
        rest.remove(word)
    leaf_args = leaf.parse_intermixed_args(rest)
    for name, value in vars(leaf_args).items():
        setattr(args, name, value)
    return args
