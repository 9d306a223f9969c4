"""Certificates for the TLS tests, made as a user makes them: with the openssl
command (Debian's ``openssl`` package)."""

from __future__ import annotations

import subprocess
from pathlib import Path

TIMEOUT_SECONDS = 10.0
# A certificate's extensions: for a CA, and for a server that is also a client
# (its own health check, under mutual TLS).
CA_EXTENSIONS = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign"]
LEAF_EXTENSIONS = """\
subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth
authorityKeyIdentifier=keyid
"""


def openssl(
    *args: str | Path, cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )


def make_ca(directory: Path) -> None:
    """ca.pem and ca.key: a CA, as `openssl req` makes one."""
    extensions = [arg for ext in CA_EXTENSIONS for arg in ("-addext", ext)]
    result = openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=test CA", *extensions, cwd=directory,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def issue(directory: Path, name: str, serial: int) -> None:
    """<name>.pem and <name>.key, for localhost, signed by the CA; `serial` is how
    s_client's output tells one certificate from another."""
    (directory / "leaf.ext").write_text(LEAF_EXTENSIONS)
    steps = [
        ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-set_serial", str(serial), "-days", "1", "-extfile", "leaf.ext",
         "-out", f"{name}.pem"],
    ]  # fmt: skip
    for step in steps:
        result = openssl(*step, cwd=directory)
        assert result.returncode == 0, result.stderr
