"""The Dockerfile and build context for a project's image, and the tag that names it.

AI Workbench builds a project's image from its base in a fixed order: base image,
``preBuild.bash``, ``apt.txt``, ``requirements.txt``, ``postBuild.bash``. This module writes that
as a Dockerfile plus the files it copies, as pure functions of an :class:`ImageRecipe`, so the same
inputs always give the same bytes. The tag is a hash of those bytes: nothing changed, same tag,
nothing rebuilt.

Each step is its own ``RUN`` that first prints ``==> [workbench] step <name>``; while a build
streams, :func:`step_from_log_line` follows those markers so a failure can name the step that broke.

The container user is ``workbench`` with the host's uid and gid, so files written in the mounted
``/project`` keep their owner on both sides. A host uid or gid of 0 (root on the host) becomes 1000
instead: making the container user root would hide mistakes, and the name ``workbench`` cannot take
over uid 0 from ``root``. When the base already has a user with that uid (``ubuntu`` in Ubuntu
24.04 images, ``workbench`` in AI Workbench bases), that user is renamed or renumbered rather than a
second one being added. Build scripts get passwordless sudo while the image builds; the sudoers
entry is removed after ``postBuild.bash``. On a base without sudo, the scripts run as root instead.

Supported bases are glibc Linux images with ``useradd``/``usermod`` (Debian, Ubuntu, RHEL and their
kin) and ``bash``, which is what AI Workbench bases are.
"""

from __future__ import annotations

import hashlib
import io
import re
import shlex
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from workbench.errors import InvalidValueError, SpecError
from workbench.names import check_env_name, check_name

USER_NAME = "workbench"
FALLBACK_ID = 1000  # used for the uid and gid when the host's is 0
HOME_DIR = f"/home/{USER_NAME}"
PROJECT_DIR = "/project"
BUILD_DIR = "/opt/project/build"  # where AI Workbench puts the build inputs in the image
SUDOERS_FILE = "/etc/sudoers.d/workbench-build"
PROJECT_LABEL = "workbench.project"

MARKER_PREFIX = "==> [workbench] step "
STEP_BASE = "base"
STEP_USER = "user"
STEP_SUDO = "sudo"
STEP_PRE_BUILD = "preBuild.bash"
STEP_APT = "apt.txt"
STEP_REQUIREMENTS = "requirements.txt"
STEP_POST_BUILD = "postBuild.bash"
STEP_FINISH = "finish"
STEPS: tuple[str, ...] = (
    STEP_BASE,
    STEP_USER,
    STEP_SUDO,
    STEP_PRE_BUILD,
    STEP_APT,
    STEP_REQUIREMENTS,
    STEP_POST_BUILD,
    STEP_FINISH,
)
NO_SUDO_MESSAGE = "[workbench] the base image has no sudo"

USER_SCRIPT = "workbench-user.sh"
DOCKERFILE = "Dockerfile"

_MARKER = re.compile(re.escape(MARKER_PREFIX) + r"([A-Za-z0-9_.-]+)")
# "Step 1/9 : FROM x" (classic builder) or "#5 [1/9] FROM x" (BuildKit): the base is being fetched.
_FROM_STEP = re.compile(r"(?:Step \d+/\d+ : |\[\s*\d+/\d+\] )FROM\s", re.I)
# Debian package names, with an optional =version, /release or :arch, one or more to a line.
_APT_PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.:~=/_-]*")
# Image references: no whitespace or quotes, which would break or extend the FROM line.
_IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*")
# Docker repository path components: lowercase runs split by ".", "_", "__" or dashes.
_REPO_BAD_RUN = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that goes into a project's image. Equal recipes give the same image tag."""

    project_name: str
    base_image: str  # "nvcr.io/nvidia/ai-workbench/python-basic:1.0.2"
    apt: bool = True  # apt is one of the base's package managers
    pip_binary: str | None = "pip"  # the base's pip, e.g. "/opt/conda/bin/pip"; None if it has none
    pre_build: str = ""  # contents of preBuild.bash
    apt_txt: str = ""
    requirements_txt: str = ""
    post_build: str = ""  # contents of postBuild.bash
    host_uid: int = FALLBACK_ID
    host_gid: int = FALLBACK_ID
    environment: Mapping[str, str] = field(default_factory=dict)
    base_has_sudo: bool = True  # False: build scripts run as root


@dataclass(frozen=True)
class BuildContext:
    """A rendered build: the Dockerfile, every file beside it, the steps it runs, its tag."""

    files: dict[str, bytes]  # path inside the context -> contents; includes the Dockerfile
    steps: tuple[str, ...]  # the markers this build prints, in order (STEP_BASE first)
    digest: str  # sha256 hex over all files
    tag: str  # project-<name>:<first 12 hex of digest>

    @property
    def dockerfile(self) -> str:
        return self.files[DOCKERFILE].decode("utf-8")


def container_ids(host_uid: int, host_gid: int) -> tuple[int, int]:
    """The uid and gid the ``workbench`` user gets for a host user: the same, except root's 0."""
    for what, value in (("host uid", host_uid), ("host gid", host_gid)):
        if value < 0:
            raise InvalidValueError(what, f"must not be negative (got {value})")
    uid = host_uid or FALLBACK_ID
    gid = host_gid or FALLBACK_ID
    return uid, gid


def apt_packages(apt_txt: str) -> list[str]:
    """The packages ``apt.txt`` names; blank lines and ``#`` comments are dropped."""
    packages: list[str] = []
    for number, raw in enumerate(apt_txt.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        for word in line.split():
            if not _APT_PACKAGE.fullmatch(word):
                raise SpecError(
                    f"{word!r} is not a package name",
                    file="apt.txt",
                    line=number,
                    expected="one Debian package name per line, e.g. 'curl' or 'jq=1.6-2.1'",
                )
            packages.append(word)
    return packages


def has_commands(script: str) -> bool:
    """Whether a build script does anything: AI Workbench's templates are comments only."""
    return any(s and not s.startswith("#") for s in (ln.strip() for ln in script.splitlines()))


def has_requirements(requirements_txt: str) -> bool:
    """Whether ``requirements.txt`` asks pip for anything (comments and blanks do not)."""
    return has_commands(requirements_txt)


def image_repository(project_name: str) -> str:
    """``project-<name>``, lowercased and with separators Docker accepts in a repository name."""
    check_name("project", project_name)

    def fix(match: re.Match[str]) -> str:
        run = match.group(0)
        return run if run in {".", "_", "__"} or set(run) == {"-"} else "-"

    name = _REPO_BAD_RUN.sub(fix, project_name.lower()).strip("._-")
    return f"project-{name}"


def render(recipe: ImageRecipe) -> BuildContext:
    """The whole build for ``recipe``, checked first: a bad recipe raises a typed error."""
    check_name("project", recipe.project_name)
    if not _IMAGE_REF.fullmatch(recipe.base_image):
        raise InvalidValueError("base image", f"{recipe.base_image!r} is not an image reference")
    uid, gid = container_ids(recipe.host_uid, recipe.host_gid)
    packages = apt_packages(recipe.apt_txt)
    if packages and not recipe.apt:
        raise SpecError(
            "lists packages but the base image has no apt",
            file="apt.txt",
            expected="an empty apt.txt, or a base with apt",
        )
    wants_pip = has_requirements(recipe.requirements_txt)
    if wants_pip and not recipe.pip_binary:
        raise SpecError(
            "lists packages but the base image has no pip",
            file="requirements.txt",
            expected="an empty requirements.txt, or a base with pip",
        )
    env = _checked_environment(recipe.environment)

    files: dict[str, bytes] = {USER_SCRIPT: _user_script(uid, gid).encode()}
    steps = [STEP_BASE, STEP_USER]
    scripts = {
        STEP_PRE_BUILD: recipe.pre_build if has_commands(recipe.pre_build) else None,
        STEP_POST_BUILD: recipe.post_build if has_commands(recipe.post_build) else None,
    }
    use_sudo = recipe.base_has_sudo and any(s is not None for s in scripts.values())

    lines = [
        f"# Generated by Workbench for project {recipe.project_name}; edits are overwritten.",
        f"FROM {recipe.base_image}",
        f'LABEL {PROJECT_LABEL}="{recipe.project_name}"',
        "USER root",
        *(f'ENV {key}="{_env_value(value)}"' for key, value in env),
        f"WORKDIR {BUILD_DIR}",
        "",
        f"# step: {STEP_USER}",
        f"COPY {USER_SCRIPT} {BUILD_DIR}/{USER_SCRIPT}",
        _run(STEP_USER, f"sh {BUILD_DIR}/{USER_SCRIPT}"),
    ]
    if use_sudo:
        steps.append(STEP_SUDO)
        lines += [
            "",
            f"# step: {STEP_SUDO} (passwordless, for the build scripts only; removed in finish)",
            _run(
                STEP_SUDO,
                "if ! command -v sudo >/dev/null 2>&1; then"
                f" echo '{NO_SUDO_MESSAGE}' >&2; exit 1; fi",
                "mkdir -p /etc/sudoers.d",
                f"echo '{USER_NAME} ALL=(ALL) NOPASSWD:ALL' > {SUDOERS_FILE}",
                f"chmod 0440 {SUDOERS_FILE}",
            ),
        ]
    script_user = USER_NAME if recipe.base_has_sudo else "root"

    pre = scripts[STEP_PRE_BUILD]
    if pre is not None:
        steps.append(STEP_PRE_BUILD)
        files[STEP_PRE_BUILD] = _unix_newlines(pre)
        lines += _script_step(STEP_PRE_BUILD, script_user, uid, gid)
    if packages:
        steps.append(STEP_APT)
        install = " ".join(shlex.quote(p) for p in packages)
        lines += [
            "",
            f"# step: {STEP_APT}",
            _run(
                STEP_APT,
                "export DEBIAN_FRONTEND=noninteractive",
                "apt-get update",
                f"apt-get install -y {install}",
                "rm -rf /var/lib/apt/lists/*",
            ),
        ]
    if wants_pip and recipe.pip_binary:
        steps.append(STEP_REQUIREMENTS)
        files[STEP_REQUIREMENTS] = _unix_newlines(recipe.requirements_txt)
        # As root, into the base's own environment. PEP 668 bases (Debian 12, Ubuntu 24.04)
        # refuse system pip installs; the image is this project's alone, so that guard is lifted.
        pip = shlex.quote(recipe.pip_binary)
        lines += [
            "",
            f"# step: {STEP_REQUIREMENTS}",
            f"COPY {STEP_REQUIREMENTS} {BUILD_DIR}/{STEP_REQUIREMENTS}",
            _run(
                STEP_REQUIREMENTS,
                "PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore"
                " PIP_DISABLE_PIP_VERSION_CHECK=1"
                f" {pip} install --no-cache-dir -r {BUILD_DIR}/{STEP_REQUIREMENTS}",
            ),
        ]
    post = scripts[STEP_POST_BUILD]
    if post is not None:
        steps.append(STEP_POST_BUILD)
        files[STEP_POST_BUILD] = _unix_newlines(post)
        lines += _script_step(STEP_POST_BUILD, script_user, uid, gid)
    if use_sudo:
        steps.append(STEP_FINISH)
        lines += ["", f"# step: {STEP_FINISH}", _run(STEP_FINISH, f"rm -f {SUDOERS_FILE}")]
    lines += ["", f"USER {USER_NAME}", f"WORKDIR {PROJECT_DIR}", ""]

    files[DOCKERFILE] = "\n".join(lines).encode("utf-8")
    digest = _digest(files)
    tag = f"{image_repository(recipe.project_name)}:{digest[:12]}"
    ordered = dict(sorted(files.items()))
    return BuildContext(files=ordered, steps=tuple(steps), digest=digest, tag=tag)


def render_dockerfile(recipe: ImageRecipe) -> str:
    return render(recipe).dockerfile


def build_context_files(recipe: ImageRecipe) -> dict[str, bytes]:
    """Every file of the build context, the Dockerfile included, by path."""
    return render(recipe).files


def input_hash(recipe: ImageRecipe) -> str:
    """sha256 hex over the Dockerfile and every input file: the identity of the image."""
    return render(recipe).digest


def image_tag(recipe: ImageRecipe) -> str:
    """``project-<name>:<12 hex>``; the same inputs always give the same tag."""
    return render(recipe).tag


def build_context_tar(recipe: ImageRecipe) -> bytes:
    """The build context as an uncompressed tar.

    For the Docker SDK: ``images.build(fileobj=io.BytesIO(tar), custom_context=True)``.

    Timestamps and owners are fixed so the same recipe gives the same bytes.
    """
    return context_tar(render(recipe).files)


def context_tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            data = files[path]
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755 if path.endswith((".sh", ".bash")) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def step_from_log_line(line: str) -> str | None:
    """The step a build log line starts, or None if it starts none.

    Feed it every line; the last non-None answer is the step that is running, and so the one to
    blame when the build fails.
    """
    match = _MARKER.search(line)
    if match:
        return match.group(1)
    if _FROM_STEP.search(line):
        return STEP_BASE
    return None


def _run(step: str, *commands: str) -> str:
    chain = [f"echo '{MARKER_PREFIX}{step}'", *commands]
    return "RUN " + " \\\n && ".join(chain)


def _script_step(step: str, user: str, uid: int, gid: int) -> list[str]:
    # bash, not bash -e: AI Workbench runs the scripts as they are, so the last command's status
    # decides, exactly as when the user runs the script by hand.
    return [
        "",
        f"# step: {step} (as {user})",
        f"COPY --chown={uid}:{gid} {step} {BUILD_DIR}/{step}",
        f"USER {user}",
        _run(step, f"bash {BUILD_DIR}/{step}"),
        "USER root",
    ]


def _user_script(uid: int, gid: int) -> str:
    return f"""#!/bin/sh
# Make the {USER_NAME} user with uid {uid} and gid {gid}, taking over whatever the base already has.
set -eu
uid={uid}
gid={gid}
name={USER_NAME}
home={HOME_DIR}

# The group: one that already has this gid is reused as it is (e.g. "staff", "ubuntu").
if ! getent group "$gid" >/dev/null; then
    if getent group "$name" >/dev/null; then
        groupmod -g "$gid" "$name"
    else
        groupadd -g "$gid" "$name"
    fi
fi

holder=$(getent passwd "$uid" | cut -d: -f1) || holder=
if [ -n "$holder" ] && [ "$holder" != "$name" ]; then
    if id -u "$name" >/dev/null 2>&1; then
        # Both exist: the uid's holder goes; its files keep the uid and so pass to $name.
        userdel "$holder"
    else
        # E.g. "ubuntu" (1000) in Ubuntu 24.04 images: rename it, keeping its files and uid.
        if [ "$(getent group "$gid" | cut -d: -f1)" = "$holder" ] \\
            && ! getent group "$name" >/dev/null; then
            groupmod -n "$name" "$holder"
        fi
        usermod -l "$name" -d "$home" -m "$holder"
    fi
fi

if id -u "$name" >/dev/null 2>&1; then
    [ "$(id -u "$name")" = "$uid" ] || usermod -u "$uid" "$name"
    usermod -g "$gid" -d "$home" "$name"
else
    shell=/bin/bash
    [ -x "$shell" ] || shell=/bin/sh
    # -l: no lastlog/faillog entry, which for a large uid makes a huge sparse file in the image.
    useradd -l -u "$uid" -g "$gid" -d "$home" -m -s "$shell" "$name"
fi

mkdir -p "$home" {PROJECT_DIR}
chown "$uid:$gid" "$home" {PROJECT_DIR}
"""


def _checked_environment(environment: Mapping[str, str]) -> list[tuple[str, str]]:
    # Sorted: the spec's order carries no meaning here, so it must not change the tag.
    for key, value in environment.items():
        check_env_name("environment", key)
        if "\n" in value or "\r" in value:
            raise InvalidValueError(f"environment.{key}", "must be a single line")
    return sorted(environment.items())


def _env_value(value: str) -> str:
    # Inside ENV "...": backslash and quote are escapes, and $ would expand another variable.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")


def _unix_newlines(text: str) -> bytes:
    # A script saved with CRLF on Windows fails in bash with "$'\r': command not found".
    return text.replace("\r\n", "\n").encode("utf-8")


def _digest(files: Mapping[str, bytes]) -> str:
    sha = hashlib.sha256()
    for path in sorted(files):
        data = files[path]
        sha.update(f"{path}\0{len(data)}\0".encode())
        sha.update(data)
    return sha.hexdigest()
