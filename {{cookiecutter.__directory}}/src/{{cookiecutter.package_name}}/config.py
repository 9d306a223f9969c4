"""Settings: command-line flags over environment variables over defaults.

Each setting is a field of a frozen dataclass. Its environment variable is the field
name in upper case with the project's prefix; HOST and PORT keep the usual names.
A value out of bounds stops the program with one line naming the flag or variable
and what it accepts.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

PROG = "{{ cookiecutter.project_slug }}"
ENV_PREFIX = "{{ cookiecutter.package_name | upper }}_"
UNPREFIXED = frozenset({"host", "port"})
# What the health probe reads of the server's settings.
PROBED = ("host", "port", "tls_cert", "tls_key", "tls_client_ca")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
DAY_SECONDS = 86400
METRICS_PORT = {{ cookiecutter.__metrics_port }}  # the server's port, plus one
BOOLEANS = {
    "true": True,
    "yes": True,
    "1": True,
    "false": False,
    "no": False,
    "0": False,
}
# Plain decimal numbers only: no "1_000", "nan", "inf" or non-ASCII digits.
NUMBER = {
    int: re.compile(r"[+-]?[0-9]+"),
    float: re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"),
}

S = TypeVar("S", bound="Settings")


class ConfigError(ValueError):
    """A setting has a value it does not accept."""


def setting(
    default: Any,
    description: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: Sequence[str] = (),
    named: Mapping[str, Callable[[], Any]] | None = None,
) -> Any:
    """Declare a setting: its default, what it is for and what it accepts.

    `named` values are words that stand for a value worked out when read (``auto``).
    """
    metadata = {
        "description": description,
        "minimum": minimum,
        "maximum": maximum,
        "choices": tuple(choices),
        "named": dict(named or {}),
    }
    return dataclasses.field(default=default, metadata=metadata)


def usable_cpus() -> int:
    """The CPUs this process may run on: fewer than the machine has when a cpuset
    (taskset, a container's --cpuset-cpus) narrows them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every server takes; each concurrency model adds its own limits."""

    host: str = setting("127.0.0.1", "address to listen on; 0.0.0.0 for every address")
    port: int = setting(
        {{ cookiecutter.port }}, "port to listen on; 0 picks a free one", minimum=0, maximum=65535
    )
    idle_timeout: float = setting(
        60.0,
        "seconds a client has to send each request or take each reply",
        minimum=0.001,
        maximum=DAY_SECONDS,
    )
    shutdown_timeout: float = setting(
        30.0,
        "seconds in-flight requests get to finish on SIGTERM",
        minimum=0,
        maximum=DAY_SECONDS,
    )
    workers: int = setting(
        1,
        "processes sharing the port, each with its own limits; auto for one per CPU",
        minimum=1,
        maximum=1024,
        named={"auto": usable_cpus},
    )
    metrics_port: int = setting(
        METRICS_PORT,
        "port of the Prometheus metrics listener, on the same host; 0 turns it off",
        minimum=0,
        maximum=65535,
    )
    tls_cert: str = setting(
        "", "PEM certificate chain to serve TLS with; SIGHUP reloads it and the key"
    )
    tls_key: str = setting("", "PEM private key of the TLS certificate")
    tls_client_ca: str = setting(
        "", "PEM CA certificates: require a client certificate they signed"
    )
    log_level: str = setting("INFO", "log level", choices=LOG_LEVELS)
    log_format: str = setting("text", "log format", choices=LOG_FORMATS)

    def __post_init__(self) -> None:
        """Check settings against each other: each layer adds its checks."""
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError(
                f"{flag('tls_cert')} ({env_var('tls_cert')}) and {flag('tls_key')} "
                f"({env_var('tls_key')}) go together: set both, or neither"
            )
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError(
                f"{flag('tls_client_ca')} ({env_var('tls_client_ca')}) needs TLS: "
                f"set {flag('tls_cert')} and {flag('tls_key')} too"
            )


def env_var(name: str) -> str:
    """The environment variable of a setting."""
    return name.upper() if name in UNPREFIXED else ENV_PREFIX + name.upper()


def flag(name: str) -> str:
    """The command-line flag of a setting."""
    return "--" + name.replace("_", "-")


def load(
    cls: type[S],
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> S:
    """Build settings from flags, then the environment, then the defaults."""
    fields = dataclasses.fields(cls)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="{{ cookiecutter.protocol }} server, {{ cookiecutter.concurrency }} model",
    )
    for field in fields:
        parser.add_argument(
            flag(field.name),
            metavar=field.name.upper(),
            help=f"{field.metadata['description']} (env {env_var(field.name)}, "
            f"default {'unset' if field.default == '' else field.default})",
        )
    args = parser.parse_args(argv)
    types = typing.get_type_hints(cls)
    values = {}
    for field in fields:
        if (raw := getattr(args, field.name)) is not None:
            source = flag(field.name)
        elif (raw := environ.get(env_var(field.name))) is not None:
            source = env_var(field.name)
        else:
            continue
        try:
            values[field.name] = parse(raw, types[field.name], field.metadata)
        except ValueError as error:
            raise ConfigError(f"{source}={raw!r}: {error}") from None
    return cls(**values)


def local_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """What a probe on this machine needs of the server's settings: its address,
    with a wildcard host (every address) replaced by the loopback address, and its
    TLS files. The server's other settings are its own business."""
    names = {env_var(name) for name in PROBED}
    settings = load(Settings, [], {k: v for k, v in environ.items() if k in names})
    wildcards = {"0.0.0.0": "127.0.0.1", "::": "::1"}
    host = wildcards.get(settings.host, settings.host)
    return dataclasses.replace(settings, host=host)


def parse(raw: str, kind: type, rules: Mapping[str, Any]) -> Any:
    """Turn one raw value into its type, or raise ValueError saying what is allowed."""
    text = raw.strip()
    if choices := rules["choices"]:
        for choice in choices:
            if text.casefold() == choice.casefold():
                return choice
        raise ValueError(f"expected one of {', '.join(choices)}")
    if (named := rules["named"].get(text.casefold())) is not None:
        return named()
    if kind is bool:
        if text.lower() in BOOLEANS:
            return BOOLEANS[text.lower()]
        raise ValueError("expected true or false")
    if kind is str:
        if not text:
            raise ValueError("expected a value, not an empty one")
        return text
    low, high = rules["minimum"], rules["maximum"]
    expected = "a whole number" if kind is int else "a number"
    if low is not None and high is not None:
        expected += f" from {low} to {high}"
    elif low is not None:
        expected += f" >= {low}"
    if named := rules["named"]:
        expected += ", or " + " or ".join(named)
    if not NUMBER[kind].fullmatch(text):
        raise ValueError(f"expected {expected}")
    value = kind(text)
    if not math.isfinite(value) or (
        (low is not None and value < low) or (high is not None and value > high)
    ):
        raise ValueError(f"expected {expected}")
    return value
