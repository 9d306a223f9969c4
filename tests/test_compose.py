"""Each cell's replicas behind HAProxy (deploy/compose.yaml, deploy/haproxy.cfg),
run with the commands of the rendered README's "Scaling out" section.

Without an engine: every haproxy.cfg passes `haproxy -c`, and every compose.yaml
passes `docker-compose config` and yamllint and agrees with the image and the
HAProxy configuration. With a Docker engine and Compose (where there is none,
these skip and say how to get them, or fail if TEMPLATE_REQUIRE_DOCKER is set),
for every cell: three replicas come up behind HAProxy, whose own counters show a
real client's requests reaching each of them; scaling down to one replica while a
client sends request after request loses none of them; `down` leaves no
container and no network behind. Each cell's timings and the requests of its
scale-down are printed at the end of the run.

Where no registry can be reached, the haproxy image that compose.yaml names is a
stand-in built once per run from tests/docker/haproxy (Debian's haproxy package on
the local base image); where one can, the real image is pulled.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import fcntl
import http.client
import io
import itertools
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import (
    CELLS,
    NAMES,
    PROTOCOLS,
    TEMPLATE,
    assert_yaml_lint_clean,
    clean_environment,
    missing,
    run,
)
from .test_containers import (
    CLIENTS,
    build_on_this_engine,
    kustomized_image,
    tagged,
)
from .test_prometheus import query

SCALING_SECTION = re.compile(
    r"\n## Scaling out\n\n.*?```sh\n(?P<commands>.+?)\n```", re.S
)
# The request each README makes through the balancer, which the test's client of
# the protocol makes too.
REQUESTS = {
    "tcp": "printf 'hello\\n' | nc -N 127.0.0.1 {port}",
    "http": "curl -d hello http://127.0.0.1:{port}/echo",
    "websocket": "python -m websockets ws://127.0.0.1:{port}/",
}
COMPOSE_FILE = TEMPLATE / "{{cookiecutter.__directory}}" / "deploy" / "compose.yaml"
HAPROXY_IMAGE = re.findall(r"image: (haproxy:\S+)", COMPOSE_FILE.read_text())[0]
PROMETHEUS_IMAGE = re.findall(r"image: (prom/\S+)", COMPOSE_FILE.read_text())[0]
# Where the official image reads its configuration.
HAPROXY_CONFIG = "/usr/local/etc/haproxy/haproxy.cfg"
# The stand-in of each official image, where none can be pulled.
STAND_INS = {
    HAPROXY_IMAGE: Path(__file__).parent / "docker" / "haproxy",
    PROMETHEUS_IMAGE: Path(__file__).parent / "docker" / "prometheus",
}
# Host ports of the balancers, one per cell (test_containers.py uses 20000 up).
LB_PORTS = {cell.id: 21000 + index for index, cell in enumerate(CELLS)}
REPLICAS = 3
WAIT_SECONDS = 30.0  # for HAProxy to see the replicas, or the loop to go on
MAX_REQUESTS = 20_000  # a bound on the loop, far above what a scale-down takes
SUMMED = 20  # requests sent for the stack's Prometheus to count
# What the stack's Prometheus sums over the replicas, made by a client whose every
# request it counts, and which no health check makes.
COUNTED = {
    "tcp": 'sum({package}_protocol_errors_total{{kind="malformed"}})',
    "http": 'sum({package}_requests_total{{outcome="4xx"}})',
    "websocket": 'sum({package}_messages_total{{outcome="ok"}})',
}
AFTER_SCALING = 100  # requests the loop makes after the scale-down, to the survivor


@pytest.fixture(scope="session")
def compose(docker: None) -> list[str]:
    """The Compose command: docker-compose (v1, as Debian has it) or docker compose."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if plugin.returncode != 0:
        missing(
            "no Compose", "install docker-compose (Debian's package) or docker compose"
        )
    return ["docker", "compose"]


@pytest.fixture(scope="session")
def official_images(
    docker: None, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> None:
    """The official images compose.yaml names, pulled, or else their stand-ins
    built: once per run, whichever xdist worker comes first."""
    run_folder = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        run_folder = run_folder.parent  # shared by the run's workers
    with (run_folder / "official-images.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = run_folder / "official-images.ready"
        if not ready.exists():
            for image, stand_in in STAND_INS.items():
                pulled = subprocess.run(["docker", "pull", image], capture_output=True)
                if pulled.returncode != 0:
                    build = ["docker", "build", "-t", image, str(stand_in)]
                    run(build_on_this_engine(build), cwd=stand_in)
            ready.touch()


def render(bake: Any, protocol: str, model: str, **answers: Any) -> Any:
    result = bake(protocol=protocol, concurrency=model, **answers)
    assert result.exit_code == 0, result.exception
    return result


@pytest.mark.skipif(
    shutil.which("haproxy") is None,
    reason="no haproxy here (Debian: apt-get install haproxy; .ci/run installs it)",
)
@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_every_haproxy_config_is_valid(bake: Any, protocol: str, model: str) -> None:
    project = render(bake, protocol, model).project_path
    check = subprocess.run(
        ["haproxy", "-c", "-f", "deploy/haproxy.cfg"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    output = check.stdout + check.stderr
    assert check.returncode == 0, output
    # Nothing deprecated or ignored either: a newer HAProxy may refuse it.
    assert output.strip() == "Configuration file is valid", output


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_compose_file_is_valid_and_yamllint_clean(
    bake: Any, protocol: str, name: str
) -> None:
    project = render(bake, protocol, "asyncio", project_name=name).project_path
    assert_yaml_lint_clean(project / "deploy" / "compose.yaml")
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("no docker-compose here (Debian's package; .ci/run installs it)")
    run([compose, "-f", "deploy/compose.yaml", "config", "--quiet"], cwd=project)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_compose_file_agrees_with_the_image_haproxy_and_prometheus(
    bake: Any, protocol: str
) -> None:
    result = render(bake, protocol, "asyncio")
    project, port = result.project_path, int(result.context["port"])
    prefix = result.context["package_name"].upper() + "_"
    services = yaml.safe_load((project / "deploy/compose.yaml").read_text())["services"]
    web, haproxy = services["web"], services["haproxy"]
    assert web["image"] == kustomized_image(project)
    assert "ports" not in web, "replicas are reached through HAProxy only"
    assert web["deploy"]["replicas"] == REPLICAS
    # A drain ends before compose's SIGKILL.
    drain = re.search(
        rf"{prefix}SHUTDOWN_TIMEOUT=(\d+)", (project / "Dockerfile").read_text()
    )
    assert drain is not None
    assert int(web["stop_grace_period"].removesuffix("s")) > int(drain[1])
    # The official image, a pinned version, its configuration where it reads it.
    assert re.fullmatch(r"haproxy:\d+\.\d+(\.\d+)?", haproxy["image"])
    assert f"./haproxy.cfg:{HAPROXY_CONFIG}:ro" in haproxy["volumes"]
    assert haproxy["ports"][0] == f"127.0.0.1:${{{prefix}LB_PORT:-{port}}}:{port}"
    assert all(published.startswith("127.0.0.1:") for published in haproxy["ports"])
    assert haproxy["depends_on"] == {"web": {"condition": "service_healthy"}}
    config = (project / "deploy/haproxy.cfg").read_text()
    assert f"\n    bind :{port}\n" in config
    assert f" web:{port} check resolvers docker " in config
    assert f"\n    mode {'tcp' if protocol == 'tcp' else 'http'}\n" in config
    # The official Prometheus, scraping every replica's metrics listener.
    prometheus = services["prometheus"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prometheus["image"])
    mounted = "./prometheus.yml:/etc/prometheus/prometheus.yml:ro"
    assert prometheus["volumes"] == [mounted]
    assert prometheus["ports"] == ["127.0.0.1::9090"]
    metrics_port = re.search(
        r"^METRICS_PORT = (\d+)",
        (project / "src" / result.context["package_name"] / "config.py").read_text(),
        re.M,
    )
    assert metrics_port is not None
    (job,) = yaml.safe_load((project / "deploy/prometheus.yml").read_text())[
        "scrape_configs"
    ]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["web"]
    assert (discovery["type"], discovery["port"]) == ("A", int(metrics_port[1]))


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="no promtool here (Debian: apt-get install prometheus; .ci/run installs it)",
)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_prometheus_config_is_valid(bake: Any, protocol: str) -> None:
    project = render(bake, protocol, "threaded").project_path
    assert_yaml_lint_clean(project / "deploy" / "prometheus.yml")
    run(["promtool", "check", "config", "deploy/prometheus.yml"], cwd=project)


def test_without_docker_there_is_nothing_to_scale(bake: Any) -> None:
    project = render(bake, "http", "asyncio", include_docker=False).project_path
    assert not (project / "deploy").exists()
    assert "## Scaling out" not in (project / "README.md").read_text()


def scaling_commands(result: Any, compose: list[str]) -> dict[str, list[str]]:
    """The README's Scaling out commands, by what each does, once each is known to
    do it; the request is the test's own client's."""
    project, context = result.project_path, result.context
    section = SCALING_SECTION.search((project / "README.md").read_text())
    assert section is not None, "the README has no Scaling out section to follow"
    lines = section["commands"].splitlines()
    build, up, stats, prometheus, request, scale_down, down = lines
    assert request == REQUESTS[context["protocol"]].format(port=context["port"])
    commands = {
        "build": build_on_this_engine(shlex.split(build)),
        "up": shlex.split(up),
        "stats": shlex.split(stats),
        "prometheus": shlex.split(prometheus),
        "scale down": shlex.split(scale_down),
        "down": shlex.split(down),
    }
    assert commands["build"][:2] == ["docker", "build"], build
    assert tagged(commands["build"]) == kustomized_image(project), build
    ends = {
        "up": ["up", "-d"],
        "stats": ["port", "haproxy", "8404"],
        "prometheus": ["port", "prometheus", "9090"],
        "scale down": ["up", "-d", "--scale", "web=1"],
        "down": ["down"],
    }
    for role, end in ends.items():
        command = commands[role]
        assert command[0] == "docker-compose", command
        assert command[-len(end) :] == end, command
        # Named as the project, so that its containers are told apart from others'.
        assert ("-p", context["project_slug"]) in itertools.pairwise(command), command
        commands[role] = [*compose, *command[1:]]
    return commands


class Requests:
    """A client making one request after another, each on a new connection, and
    counting those that fail, until it is stopped."""

    def __init__(self, client: Callable[[tuple[str, int]], None], port: int) -> None:
        self.client, self.address = client, ("127.0.0.1", port)
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Requests:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def wait_for(self, requests: int) -> None:
        """Until `requests` more are made (or the loop ends)."""
        target = self.sent + requests
        deadline = time.monotonic() + WAIT_SECONDS
        while self.sent < target and self._thread.is_alive():
            assert time.monotonic() < deadline, f"{self.sent} requests made"
            time.sleep(0.01)

    def _loop(self) -> None:
        while not self._stop.is_set() and self.sent < MAX_REQUESTS:
            try:
                self.client(self.address)
            except Exception as error:  # however a request fails, it is lost
                first_line = str(error).partition("\n")[0]
                self.failures.append(f"{type(error).__name__}: {first_line}")
            self.sent += 1


def backend(stats_address: str) -> dict[str, dict[str, str]]:
    """HAProxy's own counters of each server slot of the backend, by address."""
    url = f"http://{stats_address}/;csv"
    with urllib.request.urlopen(url, timeout=5) as response:
        table = response.read().decode().removeprefix("# ")
    return {
        row["addr"]: row
        for row in csv.DictReader(io.StringIO(table))
        if row["pxname"] == "web" and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def replicas(compose: list[str], project: Path, port: str) -> set[str]:
    """The address and port of every running replica, as HAProxy names them;
    `compose` is the command with the project's name and file."""
    containers = run([*compose, "ps", "-q", "web"], project).split()
    addresses = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    return {
        run(["docker", "inspect", "--format", addresses, container], project).strip()
        + f":{port}"
        for container in containers
    }


def malformed_line(address: tuple[str, int]) -> None:
    """A line that is no UTF-8, which the server answers with an error line."""
    with socket.create_connection(address, timeout=WAIT_SECONDS) as sock:
        sock.sendall(b"\xff\n")
        assert sock.makefile("rb").readline() == b"ERROR invalid UTF-8\n"


def missing_page(address: tuple[str, int]) -> None:
    """A request for a page that does not exist: a 404."""
    connection = http.client.HTTPConnection(*address, timeout=WAIT_SECONDS)
    try:
        connection.request("GET", "/no-such-page")
        assert connection.getresponse().status == 404
    finally:
        connection.close()


COUNTED_CLIENTS = {
    "tcp": malformed_line,
    "http": missing_page,
    "websocket": CLIENTS["websocket"],
}


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for `condition`, which may fail with OSError until it holds."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with contextlib.suppress(OSError):
            if condition():
                return
        assert time.monotonic() < deadline, f"no {what} within {WAIT_SECONDS} s"
        time.sleep(0.2)


def leftovers(name: str) -> list[str]:
    """The containers and networks of compose project `name` still there."""
    label = f"label=com.docker.compose.project={name}"
    return [
        *run(["docker", "ps", "-aq", "--filter", label], Path()).split(),
        *run(["docker", "network", "ls", "-q", "--filter", label], Path()).split(),
    ]


@pytest.mark.usefixtures("official_images")
@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_replicas_serve_behind_haproxy_and_scale_down_losing_no_request(
    compose: list[str],
    bake: Any,
    protocol: str,
    model: str,
    record_property: Any,
) -> None:
    answers = {"project_name": f"lb {protocol} {model}"}
    if python := os.environ.get("TEMPLATE_DOCKER_PYTHON"):
        answers["python_version"] = python  # the only one the local base image has
    result = render(bake, protocol, model, **answers)
    project, context = result.project_path, result.context
    commands = scaling_commands(result, compose)
    port, lb_port = context["port"], LB_PORTS[f"{protocol}-{model}"]
    # The balancer on a host port of the test's, as the README says it can be.
    variables = {f"{context['package_name'].upper()}_LB_PORT": str(lb_port)}
    client = CLIENTS[protocol]
    this_compose = commands["down"][:-1]  # with the project's name and file

    def step(name: str) -> str:
        started = time.monotonic()
        output = run(commands[name], project, variables)
        record_property(f"{name} seconds", round(time.monotonic() - started, 1))
        return output

    step("build")
    try:
        step("up")
        stats = step("stats").strip()
        started = replicas(this_compose, project, port)
        assert len(started) == REPLICAS, started

        def all_up() -> bool:
            up = {a for a, row in backend(stats).items() if row["status"] == "UP"}
            return up == started

        until(all_up, f"{REPLICAS} replicas up in HAProxy")
        # Spread over the replicas by HAProxy: a few rounds reach every one.
        for _ in range(3 * REPLICAS):
            client(("127.0.0.1", lb_port))
        served = {a for a, row in backend(stats).items() if int(row["stot"])}
        assert served == started, "HAProxy did not send requests to every replica"
        # The stack's Prometheus sums what every replica counted.
        prometheus = step("prometheus").strip()
        counted = COUNTED[protocol].format(package=context["package_name"])
        for _ in range(SUMMED):
            COUNTED_CLIENTS[protocol](("127.0.0.1", lb_port))
        # WebSocket messages: the test client's rounds above are counted too.
        expected = SUMMED + (3 * REPLICAS if protocol == "websocket" else 0)
        until(
            lambda: query(prometheus, counted) == expected,
            f"{counted} = {expected} in the stack's Prometheus",
        )

        with Requests(client, lb_port) as requests:
            requests.wait_for(AFTER_SCALING)
            step("scale down")
            requests.wait_for(AFTER_SCALING)  # all to the one replica left
        record_property("requests", requests.sent)
        record_property("lost", len(requests.failures))
        lost = collections.Counter(requests.failures).most_common()
        assert not lost, (
            f"{len(requests.failures)} of {requests.sent} requests lost "
            f"while scaling down: {lost}"
        )
        assert len(replicas(this_compose, project, port)) == 1

        step("down")
        assert leftovers(context["project_slug"]) == []
    finally:
        environment = clean_environment() | variables
        subprocess.run(
            commands["down"], cwd=project, env=environment, capture_output=True
        )
        subprocess.run(
            ["docker", "image", "rm", "-f", tagged(commands["build"])],
            capture_output=True,
        )
