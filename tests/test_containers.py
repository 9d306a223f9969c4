"""Each cell's Dockerfile builds, and the container serves, turns healthy and stops.

The commands are those of the rendered README's Docker section, run as they are:
it runs the image as the Kubernetes manifests do (read-only but for /tmp, as
their UID), so what works here works under their securityContext.
They need a working Docker engine: the one the environment points at, or the one
tests/docker/start-engine.sh starts on a machine without one. Where there is
none, these tests skip and say how to enable them; with TEMPLATE_REQUIRE_DOCKER
set (CI sets it), they fail instead.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import os
import re
import shlex
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import certificates, manifests
from .helpers import CELLS, missing, run

DOCKER_SECTION = re.compile(r"## Docker\n\n```sh\n(?P<build>.+)\n(?P<run>.+)\n```")
# The Docker section's second command: the same run, serving TLS.
DOCKER_TLS = re.compile(r"```sh\n(?P<run>docker run .+/etc/tls.+)\n```")
PORTS = {cell.id: 20000 + index for index, cell in enumerate(CELLS)}
TIMEOUT_SECONDS = 10.0
HEALTHY_WITHIN_SECONDS = 90


def test_every_dockerfile_passes_hadolint(bake: Any) -> None:
    for cell in CELLS:
        protocol, model = cell.values
        project = bake(protocol=protocol, concurrency=model).project_path
        run(["hadolint", "Dockerfile"], cwd=project)


def docker_commands(result: Any) -> tuple[list[str], list[str], str]:
    """The README's build and run commands, once the run is known to be hardened
    as the manifests' securityContext is, and the user it runs as."""
    project = result.project_path
    commands = DOCKER_SECTION.search((project / "README.md").read_text())
    assert commands is not None, "the README has no Docker section to follow"
    documents = manifests.load(project / "deploy" / "k8s")
    manifests.check_user(documents, manifests.Project.read(project, result.context))
    user = str(manifests.security(documents, "runAsUser"))
    command = shlex.split(commands["run"])
    pairs = set(itertools.pairwise(command))
    assert "--read-only" in command, command
    assert ("--tmpfs", "/tmp") in pairs, command
    assert ("--user", user) in pairs, f"{command} runs as another user than {user}"
    return shlex.split(commands["build"]), command, user


@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_the_readme_runs_the_image_as_the_manifests_do(
    bake: Any, protocol: str, model: str
) -> None:
    docker_commands(bake(protocol=protocol, concurrency=model))


@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_the_image_builds_serves_turns_healthy_and_stops(
    docker: None, bake: Any, protocol: str, model: str, record_property: Any
) -> None:
    port = PORTS[f"{protocol}-{model}"]
    answers = {"protocol": protocol, "concurrency": model, "port": port}
    if python := os.environ.get("TEMPLATE_DOCKER_PYTHON"):
        answers["python_version"] = python  # the only one the local base image has
    result = bake(project_name=f"ct {protocol} {model}", **answers)
    project = result.project_path
    build, run_image, user = docker_commands(result)
    image = tagged(build)
    # The image just built, by the name and tag the manifests run.
    assert run_image[-1] == image == kustomized_image(project)

    started = time.monotonic()
    output = run(build_on_this_engine(build), cwd=project)
    record_property("build seconds", round(time.monotonic() - started, 1))
    assert "Running pip as the 'root' user" not in output
    size = run(["docker", "image", "inspect", "--format", "{{.Size}}", image], project)
    record_property("image MB", round(int(size) / 1e6))

    runs: list[subprocess.Popen[bytes]] = []
    try:
        runs.append(subprocess.Popen(run_image, cwd=project))
        identifier = running_container(image)
        hardening = "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}"
        inspected = run(
            ["docker", "inspect", "--format", hardening, identifier], project
        )
        assert inspected.split() == ["true", user]
        # The Kubernetes preStop hook runs the image's sleep.
        run(["docker", "exec", identifier, "sleep", "0"], cwd=project)
        serves_turns_healthy_and_stops(runs[-1], identifier, protocol, port)

        # The README's run with TLS, in a shell as a user types it, from the
        # project's directory, where tls/ holds the files a CA here issued.
        tls = make_certificate(project / "tls")
        command = DOCKER_TLS.search((project / "README.md").read_text())
        assert command is not None, "the Docker section shows no run with TLS"
        environ = {**os.environ, "PWD": str(project)}
        shell = ["sh", "-c", command["run"]]
        runs.append(subprocess.Popen(shell, cwd=project, env=environ))
        identifier = running_container(image)
        serves_turns_healthy_and_stops(runs[-1], identifier, protocol, port, tls)
    finally:
        for container in runs:
            if container.poll() is None:
                container.kill()
        found = run(["docker", "ps", "-aq", "--filter", f"ancestor={image}"], Path())
        for identifier in found.split():
            subprocess.run(["docker", "rm", "-f", identifier], capture_output=True)
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)


def serves_turns_healthy_and_stops(
    container: subprocess.Popen[bytes],
    identifier: str,
    protocol: str,
    port: int,
    tls: ssl.SSLContext | None = None,
) -> None:
    """A real client is served, Docker's health check passes, and ``docker stop``
    drains the server: killed after the stop timeout, it would exit 137."""
    assert_serves(protocol, ("127.0.0.1", port), tls)
    assert wait_for_health(identifier) == "healthy"
    run(["docker", "stop", identifier], cwd=Path())
    assert container.wait(TIMEOUT_SECONDS) == 0


def make_certificate(directory: Path) -> ssl.SSLContext:
    """tls.crt and tls.key in `directory`, as a kubernetes.io/tls Secret names
    them, readable by the image's user; and a client's context that trusts them."""
    directory.mkdir()
    certificates.make_ca(directory)
    certificates.issue(directory, "server", serial=1)
    (directory / "server.pem").rename(directory / "tls.crt")
    (directory / "server.key").rename(directory / "tls.key")
    (directory / "tls.key").chmod(0o644)
    return ssl.create_default_context(cafile=directory / "ca.pem")


def tagged(build: list[str]) -> str:
    """The name:tag a ``docker build`` command gives its image."""
    (tag,) = (value for flag, value in itertools.pairwise(build) if flag == "-t")
    return tag


def kustomized_image(project: Path) -> str:
    """The name:tag of the image that the Kubernetes manifests run."""
    kustomization = project / "deploy" / "k8s" / "kustomization.yaml"
    (image,) = yaml.safe_load(kustomization.read_text())["images"]
    return f"{image['newName']}:{image['newTag']}"


def build_on_this_engine(build: list[str]) -> list[str]:
    """A README's ``docker build``, on the host's network where the engine gives
    containers no way out (tests/docker/start-engine.sh): its steps fetch packages."""
    if network := os.environ.get("TEMPLATE_DOCKER_BUILD_NETWORK"):
        return [*build[:2], "--network", network, *build[2:]]
    return build


def test_the_engine_leaves_the_host_network_as_it_was() -> None:
    """The engine that tests/docker/start-engine.sh starts changes neither IP
    forwarding nor the firewall, however long it runs."""
    before = os.environ.get("TEMPLATE_DOCKER_HOST_NETWORK")
    if before is None:
        missing(
            "no engine started by tests/docker/start-engine.sh",
            'run eval "$(tests/docker/start-engine.sh)"',
        )
    now = run([Path(__file__).parent / "docker" / "host-network.sh"], Path())
    assert now == Path(before).read_text()


def running_container(image: str) -> str:
    """The identifier of the container running `image`, once it runs."""
    for _ in range(100):
        found = run(["docker", "ps", "-q", "--filter", f"ancestor={image}"], Path())
        if found.strip():
            return found.split()[0]
        time.sleep(0.1)
    pytest.fail(f"no container of {image} started")


def wait_for_health(identifier: str) -> str:
    """The container's health once Docker has checked it (starting until then)."""
    deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
    status = "starting"
    while status == "starting" and time.monotonic() < deadline:
        time.sleep(1)
        status = run(
            ["docker", "inspect", "--format", "{{.State.Health.Status}}", identifier],
            Path(),
        ).strip()
    return status


Address = tuple[str, int]


def assert_serves(
    protocol: str, address: Address, tls: ssl.SSLContext | None = None
) -> None:
    """A real client of the protocol gets its answer (retried while it starts),
    over TLS with a client's context for it."""
    for _ in range(100):
        try:
            CLIENTS[protocol](address, tls)
            return
        except OSError:  # TLS errors too: a connection closed as it starts
            time.sleep(0.1)
    CLIENTS[protocol](address, tls)


def connect(address: Address, tls: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection(address, timeout=TIMEOUT_SECONDS)
    if tls is None:
        return sock
    return tls.wrap_socket(sock, server_hostname="localhost")


def tcp_client(address: Address, tls: ssl.SSLContext | None = None) -> None:
    with connect(address, tls) as sock:
        sock.sendall(b"hello\n")
        assert answer(sock.makefile("rb").readline()) == b"hello\n"


def http_client(address: Address, tls: ssl.SSLContext | None = None) -> None:
    with connect(address, tls) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
            b"Connection: close\r\n\r\nhello"
        )
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
        except http.client.RemoteDisconnected as error:
            raise ConnectionError("closed without an answer") from error
        assert (response.status, response.read()) == (200, b"hello")


def websocket_client(address: Address, tls: ssl.SSLContext | None = None) -> None:
    """A handshake, one masked text frame, and its echo (no websockets here)."""
    key = base64.b64encode(os.urandom(16)).decode()
    with connect(address, tls) as sock:
        sock.sendall(
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        stream = sock.makefile("rb")
        assert answer(stream.readline()).startswith(b"HTTP/1.1 101 ")
        while stream.readline() != b"\r\n":
            pass
        mask = os.urandom(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"hello"))
        sock.sendall(b"\x81\x85" + mask + payload)
        assert stream.read(7) == b"\x81\x05hello"


def answer(line: bytes) -> bytes:
    """The first line of an answer; a connection closed before it is worth a retry:
    Docker's port forwarding accepts connections before the server listens."""
    if not line:
        raise ConnectionError("closed without an answer")
    return line


CLIENTS = {"tcp": tcp_client, "http": http_client, "websocket": websocket_client}
