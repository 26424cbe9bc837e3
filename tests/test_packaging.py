"""The wheel: one top-level ``mailtrap`` package (web and plugin inside it) and its dist-info."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from checkout import checkout_copy

from mailtrap import __version__

DISTRIBUTION = "mailtrap-capture"  # "mailtrap" on PyPI is the mailtrap.io client
DIST_INFO = f"mailtrap_capture-{__version__}.dist-info"
# Source folder in the repository -> package folder in the wheel (pyproject's package-dir).
PACKAGE_DIRS = {
    "mailtrap": "mailtrap",
    "web": "mailtrap/web",
    "pytest_plugin": "mailtrap/pytest_plugin",
}


def setuptools_can_build_offline() -> bool:
    """Whether this environment's setuptools knows PEP 639 license strings (77 and later)."""
    try:
        return int(version("setuptools").split(".")[0]) >= 77
    except Exception:
        return False


def pip(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkout_copy(tmp_path_factory.mktemp("checkout"))


@pytest.fixture(scope="module")
def built_wheel(
    source_tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str]]:
    out = tmp_path_factory.mktemp("wheel")
    # Without build isolation when the local setuptools can do it (fast, no network);
    # otherwise pip fetches a current setuptools into an isolated build environment.
    isolation = ["--no-build-isolation"] if setuptools_can_build_offline() else []
    build = pip("wheel", "--verbose", "--no-deps", *isolation, "-w", out, source_tree)
    (built,) = out.glob("mailtrap_capture-*.whl")
    yield built, build.stdout + build.stderr


@pytest.fixture(scope="module")
def wheel(built_wheel: tuple[Path, str]) -> Path:
    return built_wheel[0]


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_only_the_mailtrap_package_and_its_dist_info(wheel: Path) -> None:
    names = wheel_names(wheel)

    assert wheel.name == f"mailtrap_capture-{__version__}-py3-none-any.whl"
    outside = [n for n in names if not n.startswith(("mailtrap/", f"{DIST_INFO}/"))]
    assert outside == []
    for required in (
        "mailtrap/__init__.py",
        "mailtrap/__main__.py",
        "mailtrap/py.typed",
        "mailtrap/web/__init__.py",
        "mailtrap/pytest_plugin/__init__.py",
    ):
        assert required in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_every_source_file_of_the_packages_is_in_the_wheel(wheel: Path, source_tree: Path) -> None:
    names = set(wheel_names(wheel))
    missing = []
    for folder, package in PACKAGE_DIRS.items():
        for path in (source_tree / folder).rglob("*"):
            relative = path.relative_to(source_tree / folder).as_posix()
            if path.is_file() and f"{package}/{relative}" not in names:
                missing.append(f"{folder}/{relative}")
    assert missing == [], "not in the wheel (a package or package data not declared?)"


def test_the_dist_info_names_one_top_level_package_and_the_mailtrap_command(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"{DIST_INFO}/METADATA").decode()
        entry_points = archive.read(f"{DIST_INFO}/entry_points.txt").decode()
        top_level = archive.read(f"{DIST_INFO}/top_level.txt").decode()

    assert f"Name: {DISTRIBUTION}\n" in metadata
    assert f"Version: {__version__}\n" in metadata
    assert top_level.split() == ["mailtrap"]
    scripts = entry_points.split("[console_scripts]", 1)[1]
    assert "mailtrap = mailtrap.cli:main" in scripts


def test_installing_the_wheel_adds_only_mailtrap_and_it_runs(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip("install", "--no-deps", "--no-index", "--target", target, wheel)

    installed = sorted(entry.name for entry in target.iterdir())
    assert installed in (["mailtrap", DIST_INFO], ["bin", "mailtrap", DIST_INFO])

    # The dependencies come from this environment; mailtrap itself from the target.
    env = {**os.environ, "PYTHONPATH": str(target)}
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mailtrap, mailtrap.web, mailtrap.pytest_plugin, mailtrap.cli;"
            "print(mailtrap.__file__); print(mailtrap.web.__file__)",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    for line in check.stdout.splitlines():
        assert line.startswith(str(target / "mailtrap")), line

    run = subprocess.run(
        [sys.executable, "-m", "mailtrap", "--version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert __version__ in run.stdout


def test_building_the_wheel_warns_of_nothing(built_wheel: tuple[Path, str]) -> None:
    # setuptools' warnings (about the static folders, say) start with a
    # capitalised "Warning"; distutils' lower-case notes in verbose output are not ones.
    _, output = built_wheel
    assert [line for line in output.splitlines() if "Warning" in line] == []
