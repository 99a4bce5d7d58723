"""Typed models of every section of an AI Workbench ``.project/spec.yaml`` (``specVersion: v2``).

The models are a validated *view* of the spec for the rest of Workbench to read; they are never
serialised back (the text is the source of truth, see ``document.py``). Every model keeps keys it
does not know (``extra="allow"``) so nothing a newer AI Workbench writes is dropped on the way.

Numbers and booleans are strict: Go's YAML decoder, which AI Workbench uses, refuses
``sharedMemoryMB: "lots"`` or ``autolaunch: "yes"``, and so do we. Strings are lenient the same way
Go's decoder is: an unquoted ``cuda_version: 12.2`` is still the string ``"12.2"``.

A spec may come from a stranger, so the values that become names, paths or numbers elsewhere are
held to Workbench's rules here, where ``validate`` reports them with their line: ``meta.name``
(a folder, an image and a container name), app names (files and shell commands), mount targets
(places in the container), ports and the ranges of ``workbench.values``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from workbench import values
from workbench.names import app_name_problem, mount_target_problem, name_problem

SPEC_VERSION = "v2"
MOUNT_TYPES = ("project", "volume", "host", "tmp")
APP_CLASSES = ("webapp", "process", "native")


def _scalar_to_str(value: object) -> object:
    # Go decodes any scalar into a string field; mirror it so hand-edited specs keep working.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


YamlStr = Annotated[str, BeforeValidator(_scalar_to_str)]
NonNegativeInt = Annotated[int, Field(ge=0)]


def _ranged(kind: values.IntRange) -> object:
    return Field(ge=kind.low, le=kind.high)


def _rule(problem: Callable[[str], str | None], expected: str) -> AfterValidator:
    """A check from ``workbench.names`` as a validator; ``validate`` shows ``expected``."""

    def check(value: str) -> str:
        reason = problem(value)
        if reason:
            raise PydanticCustomError(
                "workbench_rule", "{reason}", {"reason": reason, "expected": expected}
            )
        return value

    return AfterValidator(check)


def _project_name_problem(value: str) -> str | None:
    return name_problem(value) if value else None  # empty: the folder's name is used


def _port_problem(value: str) -> str | None:
    text = value.strip()
    return values.PORT.text_problem(text) if text else None


ProjectName = Annotated[
    str,
    BeforeValidator(_scalar_to_str),
    _rule(_project_name_problem, "a name of letters, digits, '.', '_' and '-'"),
]
AppName = Annotated[
    str,
    BeforeValidator(_scalar_to_str),
    _rule(app_name_problem, "a name of letters, digits, spaces and '.', '_', '-', ':'"),
]
MountTarget = Annotated[
    str,
    BeforeValidator(_scalar_to_str),
    _rule(mount_target_problem, "an absolute path outside the container's system folders"),
]
Port = Annotated[str, BeforeValidator(_scalar_to_str), _rule(_port_problem, values.PORT.expected)]
GpuCount = Annotated[int, _ranged(values.GPUS)]
SharedMemoryMB = Annotated[int, _ranged(values.SHARED_MEMORY_MB)]
AppTimeout = Annotated[int, _ranged(values.APP_TIMEOUT_SECONDS)]


class SpecModel(BaseModel):
    """Base of every spec section: strict types, unknown keys kept, field names as in YAML."""

    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: object) -> object:
        # ``key:`` with no value is null; Go leaves the field at its zero value, and so do we.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class Meta(SpecModel):
    name: ProjectName
    image: YamlStr = ""
    description: YamlStr = ""
    labels: list[YamlStr] = []
    createdOn: YamlStr = ""
    defaultBranch: YamlStr = ""


class LayoutEntry(SpecModel):
    path: YamlStr
    type: YamlStr = ""
    storage: YamlStr = ""


class Proxy(SpecModel):
    trim_prefix: bool = False


class WebappOptions(SpecModel):
    autolaunch: bool = False
    # A string in real specs ("8888"); a bare number is accepted and read as its text.
    port: Port = ""
    proxy: Proxy = Field(default_factory=Proxy)
    url: YamlStr = ""
    url_command: YamlStr = ""


class ProcessOptions(SpecModel):
    wait_until_finished: bool = False


class AppSpec(SpecModel):
    """One app (``environment.base.apps`` or ``execution.apps``): a process in the container."""

    name: AppName
    type: YamlStr = "custom"
    class_: Literal["webapp", "process", "native"] = Field("process", alias="class")
    start_command: YamlStr = ""
    health_check_command: YamlStr = ""
    stop_command: YamlStr = ""
    user_msg: YamlStr = ""
    logfile_path: YamlStr = ""
    timeout_seconds: AppTimeout = 0
    icon_url: YamlStr = ""
    webapp_options: WebappOptions | None = None
    process_options: ProcessOptions | None = None


class PackageManager(SpecModel):
    name: YamlStr
    binary_path: YamlStr = ""
    installed_packages: list[YamlStr] = []


class PackageManagerEnvironment(SpecModel):
    name: YamlStr = ""
    target: YamlStr = ""


class UserInfo(SpecModel):
    uid: YamlStr = ""
    gid: YamlStr = ""
    username: YamlStr = ""


class BaseEnvironment(SpecModel):
    """The container image the project builds on, as the base-environment catalog describes it."""

    registry: YamlStr = ""
    image: YamlStr = ""
    build_timestamp: YamlStr = ""
    name: YamlStr = ""
    supported_architectures: list[YamlStr] = []
    cuda_version: YamlStr = ""
    description: YamlStr = ""
    entrypoint_script: YamlStr = ""
    labels: list[YamlStr] = []
    apps: list[AppSpec] = []
    programming_languages: list[YamlStr] = []
    icon_url: YamlStr = ""
    image_version: YamlStr = ""
    os: YamlStr = ""
    os_distro: YamlStr = ""
    os_distro_release: YamlStr = ""
    schema_version: YamlStr = ""
    user_info: UserInfo = Field(default_factory=UserInfo)
    package_managers: list[PackageManager] = []
    package_manager_environment: PackageManagerEnvironment = Field(
        default_factory=PackageManagerEnvironment
    )


class Environment(SpecModel):
    base: BaseEnvironment = Field(default_factory=BaseEnvironment)
    compose_file_path: YamlStr = ""


class Gpu(SpecModel):
    requested: GpuCount = 0


class Resources(SpecModel):
    gpu: Gpu = Field(default_factory=Gpu)
    sharedMemoryMB: SharedMemoryMB = 0


class Secret(SpecModel):
    variable: YamlStr
    description: YamlStr = ""


class Mount(SpecModel):
    type: Literal["project", "volume", "host", "tmp"]
    target: MountTarget
    description: YamlStr = ""
    options: YamlStr = ""


class Execution(SpecModel):
    apps: list[AppSpec] = []
    resources: Resources = Field(default_factory=Resources)
    secrets: list[Secret] = []
    mounts: list[Mount] = []


class ProjectSpec(SpecModel):
    """The whole ``.project/spec.yaml``."""

    specVersion: Literal["v2"]
    specMinorVersion: NonNegativeInt = 0
    meta: Meta
    layout: list[LayoutEntry] = []
    environment: Environment = Field(default_factory=Environment)
    execution: Execution = Field(default_factory=Execution)
