"""Checks of a rendered project's Kubernetes manifests (deploy/k8s/).

`validate_schemas` runs kubernetes-validate: field names and types, per Kubernetes
version. The other checks make what it cannot: across documents (selectors, ports,
names), against the server (its port, probes, shutdown timeout) and its image (the
Dockerfile's USER), and into values (resource quantities). Each raises ManifestError
saying what is wrong; each has a test that feeds it a broken manifest.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

# The oldest Kubernetes the manifests are for.
OLDEST = "1.29.0"
KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")
Documents = dict[str, dict[str, Any]]


class ManifestError(AssertionError):
    """A manifest is wrong; the message says which and how."""


def newest() -> str:
    """The newest Kubernetes the installed kubernetes-validate has schemas for."""
    return str(kubernetes_validate.latest_version())


@dataclasses.dataclass(frozen=True)
class Project:
    """What the manifests must agree with, read from the rendered project."""

    package: str
    protocol: str
    port: int
    metrics_port: int  # the server's default, in config.py
    user: str  # the Dockerfile's USER
    shutdown_timeout: float  # the server's default, in config.py

    @classmethod
    def read(cls, path: Path, context: dict[str, Any]) -> Project:
        package = context["package_name"]
        users = re.findall(r"^USER\s+(\S+)", (path / "Dockerfile").read_text(), re.M)
        config = (path / "src" / package / "config.py").read_text()
        default = re.search(r"shutdown_timeout: float = setting\(\s*([0-9.]+)", config)
        metrics = re.search(r"^METRICS_PORT = (\d+)", config, re.M)
        if not users or default is None or metrics is None:
            raise ManifestError(
                "no USER in the Dockerfile, or no shutdown timeout or metrics port"
            )
        return cls(
            package=package,
            protocol=context["protocol"],
            port=int(context["port"]),
            metrics_port=int(metrics[1]),
            # The last USER is the one the container runs as; its user, not group.
            user=users[-1].partition(":")[0],
            shutdown_timeout=float(default[1]),
        )


def load(directory: Path) -> Documents:
    """Every document of the folder's YAML files, by kind (one of each)."""
    documents: Documents = {}
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            kind = document["kind"]
            if kind in documents:
                raise ManifestError(f"two {kind} documents in {directory}")
            documents[kind] = document
    missing = set(KINDS) - set(documents)
    if missing:
        raise ManifestError(f"no {', '.join(sorted(missing))} in {directory}")
    return documents


def validate_schemas(documents: Documents, version: str) -> None:
    """Each document against the schemas of one Kubernetes version, strictly: an
    unknown field or an API version that Kubernetes no longer serves fails."""
    for kind, document in documents.items():
        if kind == "Kustomization":  # kustomize's, not the API's: no schema
            continue
        try:
            used = kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as error:
            raise ManifestError(f"{kind}: {error.message}") from None
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.absolute_path)
            raise ManifestError(
                f"{kind} in Kubernetes {version}: {error.message} at {where}"
            ) from None
        if used != kubernetes_validate.utils.major_minor(version):
            raise ManifestError(f"{kind} checked against {used}, not {version}")


def check_kustomization(directory: Path) -> None:
    """kustomization.yaml applies every manifest of the folder, and only those."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    if listed != present:
        raise ManifestError(
            f"kustomization.yaml lists {sorted(listed)}, the folder has "
            f"{sorted(present)}"
        )


def load_tls(directory: Path) -> Documents:
    """The documents of the TLS overlay (tls/): the folder's, with its patches
    merged as kustomize merges them (a list of named items by their names)."""
    overlay = directory / "tls"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    if kustomization.get("resources") != [".."]:
        raise ManifestError(f"tls/ builds on {kustomization.get('resources')}, not ..")
    documents = load(directory)
    for patch in kustomization.get("patches", []):
        change = yaml.safe_load((overlay / patch["path"]).read_text())
        target = documents.get(change["kind"])
        if target is None or target["metadata"]["name"] != change["metadata"]["name"]:
            raise ManifestError(f"tls/{patch['path']} patches no document")
        documents[change["kind"]] = merged(target, change)
    return documents


def merged(base: Any, patch: Any) -> Any:
    """`patch` merged into `base` as a strategic merge patch does, for the fields
    the overlay uses: mappings key by key, lists of named items name by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        result = dict(base)
        for key, value in patch.items():
            result[key] = merged(base[key], value) if key in base else value
        return result
    if isinstance(base, list) and isinstance(patch, list):
        if not all(isinstance(item, dict) and "name" in item for item in base + patch):
            return patch
        result = {item["name"]: item for item in base}
        for item in patch:
            name = item["name"]
            result[name] = merged(result[name], item) if name in result else item
        return list(result.values())
    return patch


def check_tls(documents: Documents, project: Project) -> None:
    """The server reads its certificate and key from a kubernetes.io/tls Secret's
    files, and a readiness probe over HTTP asks over HTTPS."""
    server, prefix = container(documents), project.package.upper() + "_"
    settings = env(documents)
    volumes = {volume["name"]: volume for volume in pod_spec(documents)["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in server["volumeMounts"]}
    for name, key in (("TLS_CERT", "tls.crt"), ("TLS_KEY", "tls.key")):
        path = settings.get(prefix + name, "")
        mount, _, file = path.rpartition("/")
        secret = volumes.get(mounts.get(mount, ""), {}).get("secret")
        if file != key or secret is None:
            raise ManifestError(
                f"{prefix}{name}={path!r}: not {key} of a mounted Secret"
            )
    http = server["readinessProbe"].get("httpGet")
    if http is not None and http.get("scheme") != "HTTPS":
        raise ManifestError(
            f"the readinessProbe asks over {http.get('scheme', 'HTTP')}"
        )


def pod_spec(documents: Documents) -> dict[str, Any]:
    spec: dict[str, Any] = documents["Deployment"]["spec"]["template"]["spec"]
    return spec


def container(documents: Documents) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec(documents)["containers"]
    if len(containers) != 1:
        raise ManifestError(f"{len(containers)} containers, expected the server only")
    return containers[0]


def env(documents: Documents) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container(documents)["env"]}


def check_selectors(documents: Documents, project: Project) -> None:
    """The Service, the Deployment and the PodDisruptionBudget select the pods, and
    the autoscaler scales the Deployment."""
    labels = documents["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Service": documents["Service"]["spec"]["selector"],
        "Deployment": documents["Deployment"]["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget": documents["PodDisruptionBudget"]["spec"]["selector"][
            "matchLabels"
        ],
    }
    for kind, selector in selectors.items():
        if not selector or not selector.items() <= labels.items():
            raise ManifestError(
                f"the {kind}'s selector {selector} selects no pod (labels {labels})"
            )
    target = documents["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    deployment = documents["Deployment"]
    expected = (deployment["apiVersion"], "Deployment", deployment["metadata"]["name"])
    if (target["apiVersion"], target["kind"], target["name"]) != expected:
        raise ManifestError(f"the autoscaler scales {target}, not the Deployment")


def check_ports(documents: Documents, project: Project) -> None:
    """The server listens on every address at its port, and the container, its
    probes and the Service all point at that port."""
    server = container(documents)
    variables = env(documents)
    if variables.get("HOST") != "0.0.0.0":
        raise ManifestError(f"HOST is {variables.get('HOST')!r}: use 0.0.0.0 in a pod")
    if variables.get("PORT") != str(project.port):
        raise ManifestError(f"PORT is {variables.get('PORT')!r}, not {project.port}")
    ports = {port.get("name"): port["containerPort"] for port in server["ports"]}
    if list(ports.values()) != [project.port, project.metrics_port]:
        raise ManifestError(
            f"container ports {ports}, expected {project.port} and the metrics "
            f"port, {project.metrics_port}"
        )
    if ports.get("metrics") != project.metrics_port:
        raise ManifestError(f"no container port named metrics in {ports}")
    annotations = documents["Deployment"]["spec"]["template"]["metadata"].get(
        "annotations", {}
    )
    scraped = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics"}
    scraped["prometheus.io/port"] = str(project.metrics_port)
    if annotations != scraped:
        raise ManifestError(f"pod annotations {annotations}, expected {scraped}")

    def resolve(port: int | str, where: str) -> None:
        number = ports.get(port) if isinstance(port, str) else port
        if number != project.port:
            raise ManifestError(f"{where} targets port {port!r}, not {project.port}")

    for probe in ("readinessProbe", "livenessProbe"):
        for action in ("httpGet", "tcpSocket"):
            if action in server.get(probe, {}):
                resolve(server[probe][action]["port"], f"the {probe}")
    for port in documents["Service"]["spec"]["ports"]:
        resolve(port["targetPort"], f"the Service's port {port.get('name')}")


def check_probes(documents: Documents, project: Project) -> None:
    """Ready means one real round trip of the protocol; alive means the port
    accepts connections (a busy pod is not restarted)."""
    server = container(documents)
    readiness = server.get("readinessProbe", {})
    if project.protocol == "tcp":
        command = ["python", "-m", f"{project.package}.healthcheck"]
        if readiness.get("exec", {}).get("command") != command:
            raise ManifestError(f"the readinessProbe is {readiness}, not {command}")
    elif readiness.get("httpGet", {}).get("path") != "/healthz":
        raise ManifestError(f"the readinessProbe is {readiness}, not GET /healthz")
    if "tcpSocket" not in server.get("livenessProbe", {}):
        raise ManifestError("the livenessProbe is not a tcpSocket probe")


def check_grace_period(documents: Documents, project: Project) -> None:
    """The kubelet waits for the preStop sleep and the whole drain before SIGKILL."""
    pre_stop = container(documents).get("lifecycle", {}).get("preStop", {})
    match pre_stop:
        case {"exec": {"command": ["sleep", seconds]}} if seconds.isdigit():
            sleep = int(seconds)
        case {"sleep": {"seconds": int(seconds)}}:
            sleep = seconds
        case _:
            sleep = 0
    if sleep <= 0:
        raise ManifestError("no preStop sleep: clients still arrive after SIGTERM")
    variable = f"{project.package.upper()}_SHUTDOWN_TIMEOUT"
    timeout = float(env(documents).get(variable) or project.shutdown_timeout)
    grace = pod_spec(documents).get("terminationGracePeriodSeconds", 30)
    if not grace > sleep + timeout:
        raise ManifestError(
            f"terminationGracePeriodSeconds {grace} does not exceed the preStop "
            f"sleep {sleep} s plus the shutdown timeout {timeout:g} s ({variable})"
        )


def security(documents: Documents, field: str) -> Any:
    """A securityContext field as the container gets it: its own over the pod's."""
    own = container(documents).get("securityContext", {})
    return own.get(field, pod_spec(documents).get("securityContext", {}).get(field))


def check_user(documents: Documents, project: Project) -> None:
    """The pod runs as the image's own non-root user."""
    if not project.user.isdigit():  # runAsNonRoot cannot tell a name's UID
        raise ManifestError(f"the Dockerfile's USER {project.user} is not a number")
    if security(documents, "runAsNonRoot") is not True:
        raise ManifestError("runAsNonRoot is not true")
    user = security(documents, "runAsUser")
    if str(user) != project.user or user == 0:
        raise ManifestError(
            f"runAsUser is {user}, the Dockerfile's USER is {project.user}"
        )


def check_hardening(documents: Documents, project: Project) -> None:
    """No privilege to gain, no capability, the default seccomp profile, and a
    read-only root filesystem with a writable /tmp."""
    expected = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for field, value in expected.items():
        if security(documents, field) != value:
            raise ManifestError(f"securityContext.{field} is not {value}")
    volumes = {
        volume["name"]: volume for volume in pod_spec(documents).get("volumes", [])
    }
    mounts = {
        mount["mountPath"]: mount["name"]
        for mount in container(documents).get("volumeMounts", [])
    }
    if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
        raise ManifestError("no emptyDir mounted on /tmp")


def check_rollout(documents: Documents, project: Project) -> None:
    """A rollout starts a new pod before it stops an old one, and the autoscaler
    alone sets the number of replicas."""
    deployment = documents["Deployment"]["spec"]
    strategy = deployment.get("strategy", {})
    if strategy.get("type") != "RollingUpdate" or (
        strategy.get("rollingUpdate", {}).get("maxUnavailable") != 0
    ):
        raise ManifestError(f"strategy {strategy}: use RollingUpdate, maxUnavailable 0")
    if "replicas" in deployment:
        raise ManifestError("the Deployment sets replicas: each apply resets the HPA's")


SUFFIXES = {
    "": 1,
    "m": Decimal("0.001"),
    **{suffix: 1000**power for power, suffix in enumerate("kMGTPE", 1)},
    **{suffix + "i": 1024**power for power, suffix in enumerate("KMGTPE", 1)},
}
QUANTITY = re.compile(
    r"(?P<number>[+-]?([0-9]+\.?[0-9]*|\.[0-9]+))"
    r"(?P<suffix>[eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?"
)
SMALLEST = {"cpu": Decimal("0.001"), "memory": Decimal(2**20)}


def quantity(value: Any) -> Decimal:
    """A Kubernetes resource quantity (such as 250m, 1, 128Mi, 1e3), as a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ManifestError(f"{value!r} is not a quantity")
    match = QUANTITY.fullmatch(str(value))
    if match is None:
        raise ManifestError(f"{value!r} is not a quantity")
    number, suffix = Decimal(match["number"]), match["suffix"] or ""
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * SUFFIXES[suffix]


def check_resources(documents: Documents, project: Project) -> None:
    """CPU and memory requests and limits: valid quantities, each request within
    its limit, none so small that it must be a mistake (memory: 128m is 0.128 bytes)."""
    resources = container(documents).get("resources", {})
    for name in ("cpu", "memory"):
        amounts = {}
        for kind in ("requests", "limits"):
            if name not in resources.get(kind, {}):
                raise ManifestError(f"no {name} in the container's {kind}")
            amounts[kind] = quantity(resources[kind][name])
            if amounts[kind] < SMALLEST[name]:
                raise ManifestError(
                    f"{kind}.{name} {resources[kind][name]!r} is less than "
                    f"{SMALLEST[name]} (units: {'cores' if name == 'cpu' else 'bytes'})"
                )
        if amounts["requests"] > amounts["limits"]:
            raise ManifestError(f"the {name} request is over its limit")


CHECKS: list[Callable[[Documents, Project], None]] = [
    check_selectors,
    check_ports,
    check_probes,
    check_grace_period,
    check_user,
    check_hardening,
    check_rollout,
    check_resources,
]
