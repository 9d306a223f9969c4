"""TLS: the server's certificate, and a new one from the same files on SIGHUP.

The standard library's ``ssl`` does the work, with Python's defaults for a server
(``ssl.create_default_context``) and TLS 1.2 at least. Every model hands
`ServerTLS.context` to what wraps its connections (an asyncio engine's ``ssl``
parameter, or the thread drivers' sans-I/O layer), and that context never
changes: for each handshake it picks the certificate loaded last. So SIGHUP
gives new connections the certificate now in the files, as cert-manager and
secret stores rotate them in place, while open connections go on; files that
do not load are refused with a log line, and the certificate in use stays.
"""

from __future__ import annotations

import logging
import ssl
import sys
from collections.abc import Callable

from .config import ConfigError, Settings, env_var, flag

log = logging.getLogger(__name__)


class ServerTLS:
    """The server's TLS context, whose certificate `reload()` replaces."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The engines hold `context`, which hands each handshake on to `current`:
        # the same context until SIGHUP loads another.
        self.context = self.current = self._load()
        self.context.sni_callback = self._choose
        sys.unraisablehook = quiet_server_names(sys.unraisablehook)

    def reload(self) -> None:
        """Load the certificate files again, for new connections; keep the old
        certificate if they do not load."""
        try:
            self.current = self._load()
        except ConfigError as error:
            log.error("TLS certificate not reloaded, the old one stays: %s", error)
            return
        log.info("TLS certificate reloaded from %s", self.settings.tls_cert)

    def _load(self) -> ssl.SSLContext:
        settings = self.settings
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            # Never OpenSSL's prompt for a passphrase: it would stop the server.
            context.load_cert_chain(settings.tls_cert, settings.tls_key, no_passphrase)
        except (OSError, ssl.SSLError, PassphraseError) as error:
            raise ConfigError(
                f"{flag('tls_cert')}={settings.tls_cert!r} "
                f"{flag('tls_key')}={settings.tls_key!r}: cannot load the "
                f"certificate and its key: {reason(error)}"
            ) from None
        if settings.tls_client_ca:
            try:
                context.load_verify_locations(settings.tls_client_ca)
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(
                    f"{flag('tls_client_ca')}={settings.tls_client_ca!r}: cannot "
                    f"load the CA certificates: {reason(error)}"
                ) from None
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _choose(
        self, connection: ssl.SSLObject | ssl.SSLSocket, _: str | None, __: object
    ) -> None:
        # Called in every handshake, with or without a server name from the client.
        connection.context = self.current


def server_tls(settings: Settings) -> ServerTLS | None:
    """The server's TLS, or None when it serves plain connections."""
    return ServerTLS(settings) if settings.tls_cert else None


def on_hangup(tls: ServerTLS | None) -> Callable[[], None]:
    """What SIGHUP does: reload the certificate, or say there is none."""
    if tls is not None:
        return tls.reload

    def nothing_to_reload() -> None:
        log.info("SIGHUP: no TLS certificate to reload (%s unset)", env_var("tls_cert"))

    return nothing_to_reload


def probe_context(settings: Settings) -> ssl.SSLContext | None:
    """How a probe on this machine speaks to the server: over TLS when it has it.

    The probe reaches the server by its loopback address, which its certificate
    need not name, so it does not check the certificate. Under mutual TLS it
    shows the server's own certificate, which must then be one the client CA
    signed (as it is when one CA issues both).
    """
    if not settings.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if settings.tls_client_ca:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


class PassphraseError(Exception):
    """The key asks for a passphrase, and a server has nobody to type one."""


def no_passphrase() -> str:
    raise PassphraseError("the key is encrypted: give it without a passphrase")


def quiet_server_names(
    hook: Callable[[sys.UnraisableHookArgs], object],
) -> Callable[[sys.UnraisableHookArgs], object]:
    """`hook` (sys.unraisablehook), but for a client's server name (SNI) that is
    not ASCII: Python decodes it before calling the SNI callback, and reports the
    failure there, as a traceback on stderr. The handshake is refused, as it should
    be; the server logs it as it logs any handshake that fails."""

    def quiet(unraisable: sys.UnraisableHookArgs) -> object:
        if unraisable.exc_type is UnicodeDecodeError and isinstance(
            unraisable.object, bytes
        ):
            log.debug("TLS handshake failed: a server name not in ASCII")
            return None
        return hook(unraisable)

    return quiet


def reason(error: Exception) -> str:
    """What went wrong loading a file, in the fewest words."""
    if isinstance(error, ssl.SSLError):
        if error.reason in (None, "PEM lib"):  # OpenSSL's word for "unreadable"
            return "not PEM, or not a certificate with its key"
        return error.reason.replace("_", " ").lower()  # "key values mismatch"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror  # "No such file or directory"
    return str(error)
