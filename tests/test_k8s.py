"""Every cell's Kubernetes manifests (deploy/k8s/): valid for the oldest and the
newest Kubernetes supported, and consistent with the server, its image and each
other. Each check of manifests.py is also fed a broken manifest, and must fail."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from . import manifests
from .helpers import CELLS, NAMES, PROTOCOLS, TEMPLATE, assert_yaml_lint_clean
from .manifests import Documents, ManifestError, Project

VERSIONS = [manifests.OLDEST, manifests.newest()]
Rendered = tuple[Path, Project]


@pytest.fixture(scope="module")
def render(cookies_session: Any) -> Callable[..., Rendered]:
    """Render a project (once per module and answers): its manifests' folder, and
    what they must agree with."""
    rendered: dict[tuple[tuple[str, str], ...], Rendered] = {}

    def render(**answers: str) -> Rendered:
        key = tuple(sorted(answers.items()))
        if key not in rendered:
            result = cookies_session.bake(extra_context=answers, template=str(TEMPLATE))
            assert result.exit_code == 0, result.exception
            project = result.project_path
            rendered[key] = (
                project / "deploy" / "k8s",
                Project.read(project, result.context),
            )
        return rendered[key]

    return render


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_manifests_are_valid_for_the_oldest_and_newest_kubernetes(
    render: Callable[..., Rendered], protocol: str, model: str, version: str
) -> None:
    folder, _ = render(protocol=protocol, concurrency=model)
    manifests.validate_schemas(manifests.load(folder), version)


@pytest.mark.parametrize("check", manifests.CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_manifests_agree_with_the_server_its_image_and_each_other(
    render: Callable[..., Rendered],
    protocol: str,
    model: str,
    check: Callable[[Documents, Project], None],
) -> None:
    folder, project = render(protocol=protocol, concurrency=model)
    check(manifests.load(folder), project)


@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_the_kustomization_applies_every_manifest(
    render: Callable[..., Rendered], protocol: str, model: str
) -> None:
    folder, _ = render(protocol=protocol, concurrency=model)
    manifests.check_kustomization(folder)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_manifests_are_yamllint_clean(
    render: Callable[..., Rendered], protocol: str, name: str
) -> None:
    folder, _ = render(protocol=protocol, project_name=name)
    for path in sorted(folder.glob("**/*.yaml")):  # the TLS overlay's too
        assert_yaml_lint_clean(path)


def test_the_range_checked_runs_from_the_oldest_to_a_newer_version() -> None:
    major, minor = (int(part) for part in manifests.newest().split(".")[:2])
    assert (major, minor) > (1, 29)


DELETE = object()
POD = "spec.template.spec"
CONTAINER = f"{POD}.containers.0"
Change = Callable[[Documents, Project], Project]


def edit(kind: str, path: str, value: Any) -> Change:
    """A change to one field of one document: a new value, or DELETE."""

    def change(documents: Documents, project: Project) -> Project:
        *parents, last = path.split(".")
        node: Any = documents[kind]
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        key: int | str = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
        return project

    return change


def dockerfile_user(user: str) -> Change:
    return lambda documents, project: dataclasses.replace(project, user=user)


@pytest.mark.parametrize(
    ("change", "version", "message"),
    [
        pytest.param(
            edit("Deployment", POD + ".terminationGracePeriodSecond", 30),
            manifests.OLDEST,
            r"'terminationGracePeriodSecond' was unexpected",
            id="misspelled-field",
        ),
        pytest.param(
            edit("Service", "spec.ports.0.port", "8080"),
            manifests.newest(),
            r"'8080' is not of type 'integer'",
            id="wrong-type",
        ),
        pytest.param(
            edit("HorizontalPodAutoscaler", "apiVersion", "autoscaling/v2beta2"),
            manifests.OLDEST,
            r"Couldn't find schema .* autoscaling/v2beta2",
            id="api-version-no-longer-served",
        ),
        pytest.param(
            edit("PodDisruptionBudget", "apiVersion", "policy/v1beta1"),
            manifests.newest(),
            r"Couldn't find schema .* policy/v1beta1",
            id="api-version-no-longer-served-newest",
        ),
        pytest.param(
            lambda documents, project: (
                documents.update(
                    ConfigMap={"apiVersion": "v1", "kind": "ConfigMap", "date": {}}
                )
                or project
            ),
            manifests.OLDEST,
            r"ConfigMap .*'date' was unexpected",
            id="a-manifest-added-later",
        ),
    ],
)
def test_schema_validation_fails_on_a_broken_manifest(
    render: Callable[..., Rendered], change: Change, version: str, message: str
) -> None:
    folder, project = render()
    documents = manifests.load(folder)
    manifests.validate_schemas(documents, version)
    change(documents, project)
    with pytest.raises(ManifestError, match=message):
        manifests.validate_schemas(documents, version)


# Each check, and a change to a good manifest that it must catch.
BROKEN = [
    pytest.param(
        manifests.check_selectors,
        "http",
        edit("Service", "spec.selector", {"app.kubernetes.io/name": "other"}),
        r"the Service's selector .* selects no pod",
        id="selectors-service",
    ),
    pytest.param(
        manifests.check_selectors,
        "http",
        edit("PodDisruptionBudget", "spec.selector.matchLabels", {}),
        r"the PodDisruptionBudget's selector \{\} selects no pod",
        id="selectors-pdb-empty",
    ),
    pytest.param(
        manifests.check_selectors,
        "http",
        edit("HorizontalPodAutoscaler", "spec.scaleTargetRef.name", "other"),
        r"the autoscaler scales .* not the Deployment",
        id="selectors-hpa-target",
    ),
    pytest.param(
        manifests.check_ports,
        "http",
        edit("Service", "spec.ports.0.targetPort", "web"),
        r"the Service's port http targets port 'web'",
        id="ports-service-target-name",
    ),
    pytest.param(
        manifests.check_ports,
        "websocket",
        edit("Service", "spec.ports.0.targetPort", 8080),
        r"targets port 8080, not 8765",
        id="ports-service-target-number",
    ),
    pytest.param(
        manifests.check_ports,
        "http",
        edit("Deployment", CONTAINER + ".ports.0.containerPort", 80),
        r"container ports \{'http': 80, 'metrics': 8081\}, expected 8080",
        id="ports-container",
    ),
    pytest.param(
        manifests.check_ports,
        "http",
        edit("Deployment", CONTAINER + ".ports.1.name", "prom"),
        r"no container port named metrics",
        id="ports-metrics",
    ),
    pytest.param(
        manifests.check_ports,
        "websocket",
        edit("Deployment", "spec.template.metadata.annotations", {}),
        r"pod annotations \{\}, expected",
        id="ports-scrape-annotations",
    ),
    pytest.param(
        manifests.check_ports,
        "tcp",
        edit("Deployment", CONTAINER + ".livenessProbe.tcpSocket.port", 9001),
        r"the livenessProbe targets port 9001, not 9000",
        id="ports-probe",
    ),
    pytest.param(
        manifests.check_ports,
        "tcp",
        edit("Deployment", CONTAINER + ".env.1.value", "9001"),
        r"PORT is '9001', not 9000",
        id="ports-env",
    ),
    pytest.param(
        manifests.check_ports,
        "http",
        edit("Deployment", CONTAINER + ".env.0.value", "127.0.0.1"),
        r"HOST is '127.0.0.1': use 0.0.0.0",
        id="ports-host-loopback",
    ),
    pytest.param(
        manifests.check_probes,
        "http",
        edit("Deployment", CONTAINER + ".readinessProbe.httpGet.path", "/"),
        r"not GET /healthz",
        id="probes-http-path",
    ),
    pytest.param(
        manifests.check_probes,
        "tcp",
        edit(
            "Deployment",
            CONTAINER + ".readinessProbe.exec.command",
            ["python", "-m", "my_server.health"],
        ),
        r"not \['python', '-m', 'my_server.healthcheck'\]",
        id="probes-tcp-module",
    ),
    pytest.param(
        manifests.check_probes,
        "websocket",
        edit(
            "Deployment",
            CONTAINER + ".livenessProbe",
            {"httpGet": {"path": "/healthz", "port": "http"}},
        ),
        r"the livenessProbe is not a tcpSocket probe",
        id="probes-liveness-round-trip",
    ),
    pytest.param(
        manifests.check_grace_period,
        "http",
        edit("Deployment", POD + ".terminationGracePeriodSeconds", 25),
        r"terminationGracePeriodSeconds 25 does not exceed the preStop sleep 5 s "
        r"plus the shutdown timeout 20 s",
        id="grace-equal-to-the-sum",
    ),
    pytest.param(
        manifests.check_grace_period,
        "http",
        edit("Deployment", CONTAINER + ".env.2", {"name": "SHUTDOWN_TIMEOUT"}),
        r"terminationGracePeriodSeconds 30 .* shutdown timeout 30 s "
        r"\(MY_SERVER_SHUTDOWN_TIMEOUT\)",
        id="grace-shutdown-timeout-misnamed",
    ),
    pytest.param(
        manifests.check_grace_period,
        "tcp",
        edit("Deployment", CONTAINER + ".lifecycle", DELETE),
        r"no preStop sleep",
        id="grace-no-prestop",
    ),
    pytest.param(
        manifests.check_user,
        "http",
        edit("Deployment", POD + ".securityContext.runAsUser", 1000),
        r"runAsUser is 1000, the Dockerfile's USER is 10001",
        id="user-other-uid",
    ),
    pytest.param(
        manifests.check_user,
        "http",
        edit("Deployment", CONTAINER + ".securityContext.runAsUser", 0),
        r"runAsUser is 0",
        id="user-container-overrides-pod",
    ),
    pytest.param(
        manifests.check_user,
        "tcp",
        dockerfile_user("10002"),
        r"runAsUser is 10001, the Dockerfile's USER is 10002",
        id="user-dockerfile-changed",
    ),
    pytest.param(
        manifests.check_user,
        "tcp",
        dockerfile_user("app"),
        r"the Dockerfile's USER app is not a number",
        id="user-dockerfile-named",
    ),
    pytest.param(
        manifests.check_user,
        "websocket",
        edit("Deployment", POD + ".securityContext.runAsNonRoot", DELETE),
        r"runAsNonRoot is not true",
        id="user-may-be-root",
    ),
    pytest.param(
        manifests.check_hardening,
        "http",
        edit("Deployment", CONTAINER + ".securityContext.capabilities", {}),
        r"securityContext.capabilities is not \{'drop': \['ALL'\]\}",
        id="hardening-capabilities",
    ),
    pytest.param(
        manifests.check_hardening,
        "http",
        edit(
            "Deployment", CONTAINER + ".securityContext.readOnlyRootFilesystem", DELETE
        ),
        r"securityContext.readOnlyRootFilesystem is not True",
        id="hardening-writable-root",
    ),
    pytest.param(
        manifests.check_hardening,
        "tcp",
        edit("Deployment", POD + ".securityContext.seccompProfile", DELETE),
        r"securityContext.seccompProfile is not",
        id="hardening-seccomp",
    ),
    pytest.param(
        manifests.check_hardening,
        "tcp",
        edit("Deployment", CONTAINER + ".volumeMounts.0.mountPath", "/var/tmp"),
        r"no emptyDir mounted on /tmp",
        id="hardening-no-tmp",
    ),
    pytest.param(
        manifests.check_rollout,
        "http",
        edit("Deployment", "spec.strategy.rollingUpdate.maxUnavailable", "25%"),
        r"use RollingUpdate, maxUnavailable 0",
        id="rollout-max-unavailable",
    ),
    pytest.param(
        manifests.check_rollout,
        "http",
        edit("Deployment", "spec.replicas", 3),
        r"the Deployment sets replicas",
        id="rollout-replicas",
    ),
    pytest.param(
        manifests.check_resources,
        "http",
        edit("Deployment", CONTAINER + ".resources.limits.memory", "256MB!"),
        r"'256MB!' is not a quantity",
        id="resources-invalid-quantity",
    ),
    pytest.param(
        manifests.check_resources,
        "http",
        edit("Deployment", CONTAINER + ".resources.requests.memory", "128m"),
        r"requests.memory '128m' is less than 1048576 \(units: bytes\)",
        id="resources-millibytes",
    ),
    pytest.param(
        manifests.check_resources,
        "tcp",
        edit("Deployment", CONTAINER + ".resources.requests.cpu", "1500m"),
        r"the cpu request is over its limit",
        id="resources-request-over-limit",
    ),
    pytest.param(
        manifests.check_resources,
        "websocket",
        edit("Deployment", CONTAINER + ".resources.limits", DELETE),
        r"no cpu in the container's limits",
        id="resources-no-limits",
    ),
]


@pytest.mark.parametrize(("check", "protocol", "change", "message"), BROKEN)
def test_each_check_fails_on_a_broken_manifest(
    render: Callable[..., Rendered],
    check: Callable[[Documents, Project], None],
    protocol: str,
    change: Change,
    message: str,
) -> None:
    folder, project = render(protocol=protocol)
    documents = manifests.load(folder)
    check(documents, project)  # the rendered manifests pass: the change breaks them
    project = change(documents, project)
    with pytest.raises(ManifestError, match=message):
        check(documents, project)


def test_every_check_is_fed_a_broken_manifest() -> None:
    assert {param.values[0] for param in BROKEN} == set(manifests.CHECKS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda folder: (folder / "configmap.yaml").write_text("kind: ConfigMap\n"),
            r"lists .* the folder has .*'configmap.yaml'",
            id="a-manifest-not-applied",
        ),
        pytest.param(
            lambda folder: (folder / "pdb.yaml").unlink(),
            r"lists .*'pdb.yaml'.* the folder has",
            id="a-manifest-missing",
        ),
    ],
)
def test_the_kustomization_check_fails_on_a_broken_folder(
    render: Callable[..., Rendered],
    tmp_path: Path,
    change: Callable[[Path], Any],
    message: str,
) -> None:
    folder, _ = render()
    copy = shutil.copytree(folder, tmp_path / "k8s")
    manifests.check_kustomization(copy)
    change(copy)
    with pytest.raises(ManifestError, match=message):
        manifests.check_kustomization(copy)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", Decimal("0.25")),
        (1, Decimal(1)),
        (0.5, Decimal("0.5")),
        ("128Mi", Decimal(128 * 2**20)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("2k", Decimal(2000)),
        ("1e3", Decimal(1000)),
        (".5", Decimal("0.5")),
    ],
)
def test_quantities_are_read_as_kubernetes_reads_them(
    text: Any, value: Decimal
) -> None:
    assert manifests.quantity(text) == value


@pytest.mark.parametrize(
    "text", ["256MB!", "1 Gi", "Mi", "", "1.2.3", "1ki", "0x10", "1e", True, None]
)
def test_what_is_not_a_quantity_is_refused(text: Any) -> None:
    with pytest.raises(ManifestError, match="is not a quantity"):
        manifests.quantity(text)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_the_tls_overlay_is_valid_and_agrees_with_the_server(
    render: Callable[..., Rendered], protocol: str, model: str, version: str
) -> None:
    folder, project = render(protocol=protocol, concurrency=model)
    documents = manifests.load_tls(folder)
    manifests.validate_schemas(documents, version)
    for check in [*manifests.CHECKS, manifests.check_tls]:
        check(documents, project)


@pytest.mark.parametrize(
    ("protocol", "change", "message"),
    [
        pytest.param(
            "tcp",
            edit("Deployment", CONTAINER + ".volumeMounts.1.mountPath", "/etc/certs"),
            r"TLS_CERT='/etc/tls/tls.crt': not tls.crt of a mounted Secret",
            id="mounted-elsewhere",
        ),
        pytest.param(
            "http",
            edit("Deployment", CONTAINER + ".readinessProbe.httpGet.scheme", DELETE),
            r"the readinessProbe asks over HTTP$",
            id="probe-over-http",
        ),
    ],
)
def test_the_tls_check_fails_on_a_broken_overlay(
    render: Callable[..., Rendered], protocol: str, change: Change, message: str
) -> None:
    folder, project = render(protocol=protocol)
    documents = manifests.load_tls(folder)
    manifests.check_tls(documents, project)
    project = change(documents, project)
    with pytest.raises(ManifestError, match=message):
        manifests.check_tls(documents, project)


def test_the_tls_check_fails_on_the_plain_manifests(
    render: Callable[..., Rendered],
) -> None:
    folder, project = render()
    with pytest.raises(ManifestError, match=r"TLS_CERT='': not tls.crt"):
        manifests.check_tls(manifests.load(folder), project)
