"""The Docker image, built from this source tree and run for real.

The base image is a Debian 12 made with debootstrap (this machine reaches no
container registry) and the dependencies come from a wheelhouse built on the
host, both cached by `.ci/docker-base` and `.ci/docker-wheels`; CI prepares
them before the suite. Skipped only where no Docker engine answers, which
`.ci/run` makes sure is never so in CI: there the missing engine fails.
"""

from __future__ import annotations

import json
import os
import poplib
import shutil
import smtplib
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_client import plain
from checkout import REPO, checkout_copy

BUILD_TIMEOUT = 600
START_TIMEOUT = 60.0  # seconds for a container to greet on SMTP, and to turn healthy
HADOLINT = Path(sys.executable).parent / "hadolint"


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def engine_problem() -> str | None:
    """Why no Docker engine can be used here, or None when one answers."""
    if shutil.which("docker") is None:
        return "no docker command (apt-get install docker.io)"
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer within 30 s"
    if result.returncode != 0:
        return f"no Docker engine answers ({result.stderr.strip()[:200]}); start dockerd"
    return None


def prepared(script: str, env: dict[str, str] | None = None) -> str:
    """What a `.ci/docker-*` script prints: a cached image tag or folder."""
    result = subprocess.run(
        ["bash", str(REPO / ".ci" / script)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    problem = engine_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have a Docker engine: {problem}")
        pytest.skip(problem)
    base = prepared("docker-base")
    wheelhouse = Path(prepared("docker-wheels", {"PYTHON": sys.executable}))
    context = checkout_copy(tmp_path_factory.mktemp("docker-context"))
    shutil.copytree(wheelhouse, context / "wheelhouse")
    tag = f"mailtrap-test:{uuid.uuid4().hex[:12]}"
    docker(
        "build",
        "--quiet",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--build-arg",
        "PIP_NO_INDEX=1",
        "--build-arg",
        "PIP_FIND_LINKS=/src/wheelhouse",
        "--tag",
        tag,
        str(context),
        timeout=BUILD_TIMEOUT,
    )
    yield tag
    docker("rmi", "--force", tag, check=False)


@pytest.fixture
def volume() -> Iterator[str]:
    name = docker("volume", "create", f"mailtrap-test-{uuid.uuid4().hex[:12]}")
    yield name
    docker("volume", "rm", "--force", name, check=False)


class Container:
    """A running container of the image, its ports published on 127.0.0.1 only."""

    def __init__(self, image: str, volume: str):
        self.name = f"mailtrap-test-{uuid.uuid4().hex[:12]}"
        docker(
            "run",
            "--detach",
            "--name",
            self.name,
            "--volume",
            f"{volume}:/data",
            "--health-interval",
            "1s",
            *("--publish", "127.0.0.1::1025"),
            *("--publish", "127.0.0.1::8025"),
            *("--publish", "127.0.0.1::1110"),
            image,
        )

    def port(self, inside: int) -> int:
        published = docker("port", self.name, f"{inside}/tcp").splitlines()[0]
        host, _, port = published.rpartition(":")
        assert host == "127.0.0.1", published
        return int(port)

    def inspect(self) -> dict[str, Any]:
        return json.loads(docker("inspect", self.name))[0]

    def wait_until_listening(self) -> None:
        """Until the server's banner says every listener is bound.

        Docker's port proxy accepts connections before the container listens
        (and then resets them), so a connection that works is no sign of that.
        """
        deadline = time.monotonic() + START_TIMEOUT
        while "Press Ctrl+C to stop." not in (logs := self.logs()):
            running = self.inspect()["State"]["Running"]
            assert running and time.monotonic() < deadline, f"not listening: {logs}"
            time.sleep(0.2)

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while (status := self.inspect()["State"]["Health"]["Status"]) != "healthy":
            assert status != "unhealthy", self.inspect()["State"]["Health"]
            assert time.monotonic() < deadline, self.inspect()["State"]["Health"]
            time.sleep(0.5)

    def logs(self) -> str:
        result = subprocess.run(
            ["docker", "logs", self.name], capture_output=True, text=True, timeout=60
        )
        return result.stdout + result.stderr

    def remove(self) -> None:
        docker("rm", "--force", self.name, check=False)


@pytest.fixture
def containers(image: str, volume: str) -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for container in started:
        container.remove()


def api_messages(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/messages", timeout=10) as reply:
        return json.load(reply)


def test_the_image_takes_mail_is_healthy_stops_cleanly_and_keeps_mail_in_its_volume(
    image: str, volume: str, containers: list[Container]
) -> None:
    first = Container(image, volume)
    containers.append(first)
    first.wait_until_listening()
    with smtplib.SMTP("127.0.0.1", first.port(1025), timeout=10) as client:
        client.sendmail("app@example.com", ["user@example.com"], plain("from the container"))

    (summary,) = api_messages(first.port(8025))["messages"]
    assert summary["Subject"] == "from the container"
    pop3 = poplib.POP3("127.0.0.1", first.port(1110), timeout=10)
    try:
        pop3.user("user@example.com")
        pop3.pass_("any")
        _, lines, _ = pop3.retr(1)
    finally:
        pop3.quit()
    assert b"Subject: from the container" in lines
    first.wait_until_healthy()
    assert docker("exec", first.name, "id", "-u") == "10025"  # not root

    docker("stop", "--time", "30", first.name, timeout=60)
    state = first.inspect()["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0), first.logs()
    assert "Stopped." in first.logs()

    second = Container(image, volume)
    containers.append(second)
    second.wait_until_listening()
    (kept,) = api_messages(second.port(8025))["messages"]
    assert kept["ID"] == summary["ID"]


def test_the_dockerfile_lints_clean() -> None:
    result = subprocess.run(
        [str(HADOLINT), str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
