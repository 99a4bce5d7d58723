"""Line-preserving edits of apt.txt, requirements.txt and variables.env."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.build_inputs import (
    add_package,
    delete_variable,
    get_variable,
    list_packages,
    list_variables,
    looks_sensitive,
    remove_package,
    set_variable,
)
from workbench.errors import AlreadyExistsError, InvalidValueError, NotFoundError


def write(path: Path, text: str) -> None:
    path.write_bytes(text.encode())


def read(path: Path) -> str:
    return path.read_bytes().decode()


# -- packages --------------------------------------------------------------------------------


def test_list_packages_skips_comments_options_and_blank_lines(tmp_path: Path) -> None:
    write(tmp_path / "apt.txt", "# tools\ncurl\n\ngit git-lfs  # vcs\nlibgl1=1.7.0-1\n")
    write(
        tmp_path / "requirements.txt",
        "# ml\n--extra-index-url https://example.com/simple\nnumpy>=1.26\n"
        "torch[cuda] ==2.1.0 ; python_version > '3.8'\n-r more.txt\nmy_pkg @ https://x/y.whl\n",
    )
    apt = [(p.name, p.requirement, p.line) for p in list_packages(tmp_path, "apt")]
    assert apt == [
        ("curl", "curl", 2),
        ("git", "git", 4),
        ("git-lfs", "git-lfs", 4),
        ("libgl1", "libgl1=1.7.0-1", 5),
    ]
    pip = [p.name for p in list_packages(tmp_path, "pip")]
    assert pip == ["numpy", "torch", "my_pkg"]
    assert [p.manager for p in list_packages(tmp_path)] == ["apt"] * 4 + ["pip"] * 3


def test_missing_files_list_nothing_and_are_created_on_add(tmp_path: Path) -> None:
    assert list_packages(tmp_path) == []
    package = add_package(tmp_path, "pip", "numpy==1.26.4")
    assert package.line == 1
    assert read(tmp_path / "requirements.txt") == "numpy==1.26.4\n"


def test_add_keeps_comments_order_and_crlf(tmp_path: Path) -> None:
    original = "# system packages\r\ncurl\r\n\r\nvim # editor\r\n"
    write(tmp_path / "apt.txt", original)
    added = add_package(tmp_path, "apt", "ffmpeg")
    assert added.line == 5
    assert read(tmp_path / "apt.txt") == original + "ffmpeg\r\n"


def test_add_finishes_an_unterminated_last_line(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "numpy")
    add_package(tmp_path, "pip", "pandas")
    assert read(tmp_path / "requirements.txt") == "numpy\npandas\n"


def test_add_keeps_the_file_mode(tmp_path: Path) -> None:
    write(tmp_path / "apt.txt", "curl\n")
    (tmp_path / "apt.txt").chmod(0o640)
    add_package(tmp_path, "apt", "git")
    assert (tmp_path / "apt.txt").stat().st_mode & 0o777 == 0o640


def test_duplicates_are_refused_by_normalised_name(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "Scikit_Learn>=1.3\n")
    write(tmp_path / "apt.txt", "git curl\n")
    with pytest.raises(AlreadyExistsError) as err:
        add_package(tmp_path, "pip", "scikit-learn==1.4")
    assert err.value.hint and "line 1" in err.value.hint
    with pytest.raises(AlreadyExistsError):
        add_package(tmp_path, "apt", "curl")
    assert read(tmp_path / "requirements.txt") == "Scikit_Learn>=1.3\n"


@pytest.mark.parametrize(
    ("manager", "requirement"),
    [
        ("apt", "Curl"),  # Debian names are lower case
        ("apt", "curl git"),
        ("apt", "-y"),
        ("apt", "x"),
        ("apt", "curl; rm -rf /"),
        ("pip", "-r other.txt"),
        ("pip", "--index-url=https://evil"),
        ("pip", "numpy # comment"),
        ("pip", "numpy\npandas"),
        ("pip", "not a package"),
        ("pip", ""),
        ("pip", "numpy==="),
    ],
)
def test_bad_package_names_are_refused(tmp_path: Path, manager: str, requirement: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        add_package(tmp_path, manager, requirement)
    assert err.value.field == f"{manager} package"
    assert not (tmp_path / "apt.txt").exists()
    assert not (tmp_path / "requirements.txt").exists()


@pytest.mark.parametrize(
    "requirement",
    [
        "numpy",
        "torch>=2.1,<3",
        "transformers[torch]==4.40.0",
        "jupyterlab-nvdashboard",
        "zope.interface~=6.0",
        "pkg @ https://example.com/pkg-1.0-py3-none-any.whl",
        "tomli; python_version < '3.11'",
    ],
)
def test_good_pip_requirements_are_accepted(tmp_path: Path, requirement: str) -> None:
    add_package(tmp_path, "pip", requirement)
    assert read(tmp_path / "requirements.txt") == requirement + "\n"


def test_unknown_package_manager(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError) as err:
        add_package(tmp_path, "conda", "numpy")
    assert err.value.field == "package manager"


def test_remove_takes_only_its_line(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "# ml\r\nnumpy>=1.26\r\npandas\r\n")
    removed = remove_package(tmp_path, "pip", "NumPy")
    assert removed.requirement == "numpy>=1.26"
    assert read(tmp_path / "requirements.txt") == "# ml\r\npandas\r\n"


def test_remove_with_a_version_ignores_the_version(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "numpy>=1.26\n")
    remove_package(tmp_path, "pip", "numpy==2.0")
    assert read(tmp_path / "requirements.txt") == ""


def test_remove_one_word_of_a_shared_apt_line_keeps_the_rest(tmp_path: Path) -> None:
    write(tmp_path / "apt.txt", "curl git  # tools\nvim\n")
    remove_package(tmp_path, "apt", "git")
    assert read(tmp_path / "apt.txt") == "curl # tools\nvim\n"
    remove_package(tmp_path, "apt", "curl")
    assert read(tmp_path / "apt.txt") == "# tools\nvim\n"


def test_remove_missing_package(tmp_path: Path) -> None:
    write(tmp_path / "apt.txt", "# only a comment mentioning curl\n")
    with pytest.raises(NotFoundError) as err:
        remove_package(tmp_path, "apt", "curl")
    assert err.value.name == "curl"


# -- variables -------------------------------------------------------------------------------


def test_list_variables_keeps_values_literally(tmp_path: Path) -> None:
    write(
        tmp_path / "variables.env",
        "# settings\nTENSORBOARD_LOGS_DIRECTORY=/data/tensorboard/logs/\n\n"
        'GREETING=hello = world\nQUOTED="kept"\nPASSED_THROUGH\nnot a variable line\n',
    )
    found = [(v.name, v.value, v.line) for v in list_variables(tmp_path)]
    assert found == [
        ("TENSORBOARD_LOGS_DIRECTORY", "/data/tensorboard/logs/", 2),
        ("GREETING", "hello = world", 4),
        ("QUOTED", '"kept"', 5),
        ("PASSED_THROUGH", None, 6),
    ]


def test_set_appends_then_replaces_in_place(tmp_path: Path) -> None:
    original = "# comment\r\nA=1\r\nB=2\r\n"
    write(tmp_path / "variables.env", original)
    set_variable(tmp_path, "C", "3")
    assert read(tmp_path / "variables.env") == original + "C=3\r\n"
    changed = set_variable(tmp_path, "A", "one")
    assert changed.line == 2
    assert read(tmp_path / "variables.env") == "# comment\r\nA=one\r\nB=2\r\nC=3\r\n"
    assert get_variable(tmp_path, "A").value == "one"


def test_set_collapses_duplicates_so_the_new_value_wins(tmp_path: Path) -> None:
    write(tmp_path / "variables.env", "A=1\nB=2\nA=3\n")
    set_variable(tmp_path, "A", "new")
    assert read(tmp_path / "variables.env") == "A=new\nB=2\n"


def test_create_without_replace_refuses_existing(tmp_path: Path) -> None:
    write(tmp_path / "variables.env", "A=1\n")
    with pytest.raises(AlreadyExistsError):
        set_variable(tmp_path, "A", "2", replace=False)


def test_set_refuses_bad_names_and_values(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError) as err:
        set_variable(tmp_path, "1BAD", "x")
    assert err.value.field == "name"
    with pytest.raises(InvalidValueError) as err:
        set_variable(tmp_path, "GOOD", "two\nlines")
    assert err.value.field == "value"
    assert not (tmp_path / "variables.env").exists()


def test_sensitive_names_need_an_explicit_yes(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError) as err:
        set_variable(tmp_path, "NVIDIA_API_KEY", "nvapi-123")
    assert err.value.hint and "keyring" in err.value.hint
    assert not (tmp_path / "variables.env").exists()
    set_variable(tmp_path, "NVIDIA_API_KEY", "", allow_sensitive=True)
    assert read(tmp_path / "variables.env") == "NVIDIA_API_KEY=\n"


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("HF_TOKEN", True),
        ("NVIDIA_API_KEY", True),
        ("DB_PASSWORD", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("TENSORBOARD_LOGS_DIRECTORY", False),
        ("KEYBOARD_LAYOUT", False),
        ("TOKENIZERS_PARALLELISM", False),
    ],
)
def test_looks_sensitive(name: str, sensitive: bool) -> None:
    assert looks_sensitive(name) is sensitive


def test_delete_removes_every_line_for_the_name(tmp_path: Path) -> None:
    write(tmp_path / "variables.env", "# c\nA=1\nB=2\nA=3\n")
    gone = delete_variable(tmp_path, "A")
    assert gone.value == "3"
    assert read(tmp_path / "variables.env") == "# c\nB=2\n"
    with pytest.raises(NotFoundError):
        delete_variable(tmp_path, "A")
