"""Downstream SMTP servers for relay tests: aiosmtpd on loopback, recording
what they receive, with scripted answers; can be stopped and started again on
the same port to play a server that is down."""
from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

import mxgate_harness as h


@dataclass
class Received:
    mail_from: str
    rcpts: list[str]
    data: bytes
    mail_options: list[str] = field(default_factory=list)


class Downstream:
    """handler + controller; rcpt_replies / data_reply script the answers."""

    def __init__(self, port: int | None = None, tls_cert: tuple | None = None, auth: tuple[str, str] | None = None):
        self.port = port or h.free_port()
        self.received: list[Received] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None
        self.auth = auth
        self.auth_seen: list[str] = []
        self.tls_cert = tls_cert
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    # aiosmtpd handler hooks
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content or envelope.content,
                                          list(envelope.mail_options)))
        return "250 2.0.0 OK queued downstream"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and self.auth is not None and \
            (auth_data.login.decode(), auth_data.password.decode()) == self.auth
        if ok:
            self.auth_seen.append(f"{mechanism}:{auth_data.login.decode()}")
        return AuthResult(success=ok)

    def start(self) -> "Downstream":
        kwargs = {}
        if self.tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(self.tls_cert[0]), str(self.tls_cert[1]))
            kwargs["tls_context"] = ctx
            kwargs["require_starttls"] = True
        if self.auth:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = True
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    def messages_for(self, rcpt: str) -> list[Received]:
        with self.lock:
            return [m for m in self.received if rcpt in m.rcpts]
