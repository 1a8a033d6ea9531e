"""Helpers for the mxgate end-to-end suite: daemon control, raw SMTP, spool access.

Everything here is bounded in time: every wait has a deadline, every loop a
count or a clock. Nothing listens or connects outside 127.0.0.0/8 and ::1.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPORA = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora"

# Outcomes reported in the terminal summary (see conftest.pytest_terminal_summary).
TABLE_RESULTS: dict[str, str] = {}  # command-reply table row id -> match/deviation/n/a/fail
TABLE_TOTAL: list[int] = [0]
SMUGGLING_RESULTS: dict[str, str] = {}  # "row/mode" -> ok/fail
REPORT_LINES: list[str] = []  # free-form lines, e.g. durability counts

START_TIMEOUT = 10.0  # seconds until the daemon logs "ready"
STOP_TIMEOUT = 5.0  # SIGTERM grace before SIGKILL
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",  # UBSan
    "WARNING: ThreadSanitizer",
)


def build_dir() -> Path:
    return Path(os.environ.get("MXGATE_BUILD") or (REPO_ROOT / "build")).resolve()


def mxgate_bin() -> Path:
    return build_dir() / "gateway" / "mxgate"


def mxgatectl_bin() -> Path:
    return build_dir() / "gateway" / "mxgatectl"


def corpora_dir(sub: str) -> Path:
    """The shared corpus folder `sub`; skips the calling test when it is absent."""
    import pytest

    p = (CORPORA / sub).resolve()
    if not p.is_dir():
        pytest.skip(f"shared test corpus not found at {p} (expected beside the repo in ../shared/corpora)")
    return p


# --------------------------------------------------------------------------- TOML


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def toml_dump(sections: dict[str, Any]) -> str:
    """sections: name -> {key: value} for [name], or name -> [ {..}, ..] for [[name]]."""
    out: list[str] = []
    for name, body in sections.items():
        if body is None:
            continue
        if isinstance(body, list):
            for entry in body:
                out.append(f"[[{name}]]")
                out += [f"{k} = {toml_value(v)}" for k, v in entry.items() if v is not None]
                out.append("")
        else:
            out.append(f"[{name}]")
            out += [f"{k} = {toml_value(v)}" for k, v in body.items() if v is not None]
            out.append("")
    return "\n".join(out)


def merge_config(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Section-level merge: dict sections merge key by key (None deletes a key),
    list sections ([[domains]]) and None (delete the section) replace."""
    merged = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in base.items()}
    for name, body in (overrides or {}).items():
        if isinstance(body, dict) and isinstance(merged.get(name), dict):
            for k, v in body.items():
                if v is None:
                    merged[name].pop(k, None)
                else:
                    merged[name][k] = v
        else:
            merged[name] = body
    return merged


def free_port(host: str = "127.0.0.1") -> int:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- daemon


class DaemonError(AssertionError):
    pass


class Daemon:
    """One mxgate process with its own config, state and spool under `root`."""

    def __init__(self, root: Path, cert: Path, key: Path, overrides: dict | None = None,
                 extra: str = "", listen: Iterable[str] | None = None, name: str = "mxgate"):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.cert, self.key = cert, key
        self.overrides = overrides or {}
        self.extra = extra
        self.listen_templates = list(listen or ["127.0.0.1:{port}"])
        self.auto_port = True
        self.port = 0
        self.config_path = self.root / "mxgate.toml"
        self.log_path = self.root / "mxgate.log"
        self.proc: subprocess.Popen | None = None
        self.expect_clean_exit = True
        self.stop_requested = False
        self.problems: list[str] = []
        self._log_file = None

    # -- configuration
    @property
    def host(self) -> str:
        first = self.listen_templates[0]
        return "::1" if first.startswith("[::1]") else first.rsplit(":", 1)[0]

    def base_config(self) -> dict[str, Any]:
        return {
            "server": {
                "hostname": "mx.example.test",
                "listen": [t.format(port=self.port) for t in self.listen_templates],
                "threads": 2,
                "user": "",
                "state_dir": str(self.root / "state"),
                "spool_dir": str(self.root / "spool"),
                "store_map_size": "64M",
                "spool_segment_size": "4M",
                "log_level": "debug",
            },
            # Generous but finite: a hung test client is dropped by the daemon.
            "smtp": {"command_timeout": "15s", "session_timeout": "60s"},
            "tls": {"enabled": True, "cert_file": str(self.cert), "key_file": str(self.key)},
            # Most tests examine what was accepted into the spool, so delivery
            # holds it there; test_local_delivery.py turns delivery on.
            "delivery": {"hold": True, "maildir_root": str(self.root / "mail")},
            # Tests never ask the Internet: DNS answers come from a zone file
            # (empty unless a test writes its own and points here).
            "dns": {"static_zones": str(self.empty_zone())},
            "relay": {"trusted_networks": []},
            "domains": [
                {"name": "example.test", "recipients": "accept-all"},
                {"name": "list.example.test", "recipients": ["alice", "bob"]},
            ],
            # The suite makes many short sessions from 127.0.0.1: abuse
            # blocking is off unless a test turns it on.
            "filters.abuse": {"connection_rate": 0, "bad_session_limit": 0},
        }

    def empty_zone(self) -> Path:
        zone = self.root / "empty.zone"
        if not zone.exists():
            zone.write_text("# no records: every name is NXDOMAIN\n")
        return zone

    def config_text(self) -> str:
        text = toml_dump(merge_config(self.base_config(), self.overrides))
        if self.extra:
            text += "\n" + self.extra.strip() + "\n"
        return text

    def write_config(self, text: str | None = None) -> None:
        self.config_path.write_text(self.config_text() if text is None else text)

    # -- process
    def start(self, timeout: float = START_TIMEOUT) -> "Daemon":
        attempts = 3 if self.auto_port and not self.port else 1
        for attempt in range(attempts):
            if self.auto_port and (not self.port or attempt > 0):
                self.port = free_port(self.host)
                self.write_config()
            elif not self.config_path.exists():
                self.write_config()
            try:
                self._spawn(timeout)
                return self
            except DaemonError as e:
                if "in use" in str(e) and attempt + 1 < attempts:
                    continue
                raise
        raise AssertionError("unreachable")

    def _spawn(self, timeout: float) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log_file = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.stop_requested = False
        self.proc = subprocess.Popen([str(mxgate_bin()), "-c", str(self.config_path)], stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=subprocess.STDOUT, cwd=self.root, env=env)
        self.expect_clean_exit = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = self.log_since(offset)
            if " ready: listening on " in new:
                return
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise DaemonError(f"mxgate exited with status {rc} during start-up:\n{self.log_tail()}")
            time.sleep(0.02)
        raise DaemonError(f"mxgate not ready within {timeout}s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.alive(), "mxgate is not running"
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stop_requested = True
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        """Waits for the process to end (after a signal the test sent); returns its status."""
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        self.proc = None
        self._close_log()
        if self.expect_clean_exit and rc != 0:
            self.problems.append(f"exit status {rc} after SIGTERM (expected 0)")
        return rc

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT. Returns the exit status."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None and self.stop_requested:
            # The test already sent SIGTERM: let that stop finish (10 s grace) rather
            # than signal a process whose handler may already be gone.
            try:
                rc = self.proc.wait(12)
            except subprocess.TimeoutExpired:
                rc = None
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(5)
                self.problems.append(f"did not stop within {STOP_TIMEOUT}s of SIGTERM; killed")
        elif self.expect_clean_exit and not self.stop_requested:
            self.problems.append(f"exited on its own during the test with status {rc}")
        if self.expect_clean_exit and rc not in (0, None) and not self.problems:
            self.problems.append(f"exit status {rc} after SIGTERM (expected 0)")
        self.proc = None
        self._close_log()
        return rc

    def kill(self) -> None:
        """SIGKILL, as a crash or power loss would."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)
        self.proc = None
        self._close_log()

    def restart_after_kill(self) -> None:
        self._spawn(START_TIMEOUT)

    def _close_log(self) -> None:
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    # -- log
    def log(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_log(self, pattern: str, offset: int = 0, timeout: float = 5.0) -> re.Match:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_since(offset))
            if m:
                return m
            if time.monotonic() >= deadline:
                raise AssertionError(f"log never matched /{pattern}/ within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.02)

    def sanitizer_reports(self) -> list[str]:
        text = self.log()
        return [m for m in SANITIZER_MARKERS if m in text]

    # -- clients
    def connect(self, timeout: float = 5.0, source: str | None = None) -> "SmtpClient":
        return SmtpClient(self.host, self.port, timeout=timeout, source=source)

    def session(self, helo: str | None = "client.example", timeout: float = 5.0, source: str | None = None) -> "SmtpClient":
        """Connected, greeting read (must be 220), and EHLO done unless helo is None."""
        c = self.connect(timeout, source)
        c.expect(220)
        if helo:
            c.cmd(f"EHLO {helo}").check(250)
        return c

    # -- mxgatectl
    def ctl(self, *args: str, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess:
        return run_ctl(self.config_path, *args, check=check, timeout=timeout)

    def queue(self) -> list["QueueEntry"]:
        return parse_queue_list(self.ctl("queue", "list").stdout.decode("utf-8", "replace"))

    def queue_ids(self) -> list[str]:
        return [e.id for e in self.queue()]

    def raw(self, qid: str) -> bytes:
        return self.ctl("queue", "show", qid, "--raw").stdout

    def show(self, qid: str) -> str:
        return self.ctl("queue", "show", qid).stdout.decode("utf-8", "replace")

    def blocks(self) -> list[str]:
        """Blocked client addresses per `mxgatectl blocks list`."""
        out = self.ctl("blocks", "list").stdout.decode()
        ips = []
        for line in out.splitlines():
            if not line.strip() or line.startswith("CLIENT") or line.startswith("--"):
                continue
            ips.append(line.split()[0])
        return ips


def run_ctl(config: Path, *args: str, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess:
    import pytest

    ctl = mxgatectl_bin()
    if not ctl.exists():
        pytest.skip(f"mxgatectl not built yet ({ctl})")
    p = subprocess.run([str(ctl), "-c", str(config), *args], capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"mxgatectl {' '.join(args)} exited {p.returncode}:\n"
                             f"stdout: {p.stdout.decode(errors='replace')}\nstderr: {p.stderr.decode(errors='replace')}")
    return p


@dataclass
class QueueEntry:
    id: str
    size: int
    action: str
    sender: str
    rcpts: list[str]
    line: str
    status: str = ""
    tries: int = 0
    next: str = ""
    delivered: int = 0
    total: int = 0


_QUEUE_LINE = re.compile(r"^(?P<id>\S+)\s+(?P<age>\S+)\s+(?P<size>\d+)\s+(?P<action>\S+)\s+(?P<tries>\d+)\s+(?P<next>\S+)\s+"
                         r"(?P<delivered>\d+)/(?P<total>\d+)\s+(?P<status>.+?)\s+<(?P<from>[^>]*)>\s*(?P<rcpts>.*)$")


def parse_queue_list(text: str) -> list[QueueEntry]:
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("--") or line.split()[0] == "ID":
            continue
        m = _QUEUE_LINE.match(line)
        if not m:
            raise AssertionError(f"cannot parse `queue list` line: {line!r}")
        rcpts = [r for r in re.split(r"[,\s]+", m["rcpts"].strip()) if r]
        out.append(QueueEntry(m["id"], int(m["size"]), m["action"], m["from"], [r.strip("<>") for r in rcpts], line,
                              m["status"].strip(), int(m["tries"]), m["next"], int(m["delivered"]), int(m["total"])))
    return out


# --------------------------------------------------------------------------- SMTP


_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass
class Reply:
    code: int
    lines: list[str] = field(default_factory=list)  # text after "NNN-" / "NNN "

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> str | None:
        m = _ENHANCED.match(self.lines[-1]) if self.lines else None
        return m.group(1) if m else None

    def check(self, code: int, enhanced: str | None = None) -> "Reply":
        assert self.code == code, f"expected {code}{' ' + enhanced if enhanced else ''}, got {self}"
        if enhanced is not None:
            assert self.enhanced == enhanced, f"expected {code} {enhanced}, got {self}"
        return self

    def __str__(self) -> str:
        return " | ".join(f"{self.code} {l}" for l in self.lines)


class SmtpClosed(ConnectionError):
    pass


class SmtpClient:
    """A deliberately dumb SMTP client: sends exactly the bytes it is given."""

    def __init__(self, host: str, port: int, timeout: float = 5.0, source: str | None = None):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out waiting for the server")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise SmtpClosed(f"connection closed by server (unparsed: {self.buf!r})")
        self.buf += chunk

    def read_line(self, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def read_reply(self, timeout: float | None = None) -> Reply:
        deadline = time.monotonic() + (timeout or self.timeout)
        lines: list[str] = []
        code = None
        while True:
            raw = self.read_line(max(0.001, deadline - time.monotonic()))
            assert raw.endswith(b"\r\n"), f"reply line not ended by CRLF: {raw!r}"
            s = raw[:-2].decode("utf-8", "replace")
            assert re.match(r"^\d{3}[ -]", s) or re.fullmatch(r"\d{3}", s), f"malformed reply line {s!r}"
            c = int(s[:3])
            assert code is None or c == code, f"reply code changed inside a multi-line reply: {lines} then {s!r}"
            code = c
            lines.append(s[4:])
            if len(s) == 3 or s[3] == " ":
                return Reply(code, lines)

    def expect(self, code: int, enhanced: str | None = None, timeout: float | None = None) -> Reply:
        return self.read_reply(timeout).check(code, enhanced)

    def cmd(self, line: str | bytes, timeout: float | None = None) -> Reply:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    def pending(self, wait: float = 0.3) -> bytes:
        """Whatever the server sends unasked within `wait` seconds (b"" if nothing)."""
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                self._fill(deadline)
        except (socket.timeout, TimeoutError, SmtpClosed, ssl.SSLError, OSError):
            pass
        data, self.buf = self.buf, b""
        return data

    def wait_closed(self, timeout: float = 3.0) -> bool:
        """True when the server closes the connection within `timeout` (data read meanwhile is kept in buf)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._fill(deadline)
        except SmtpClosed:
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except (socket.timeout, TimeoutError):
            return False
        except ssl.SSLError:
            return True
        return False

    def starttls(self, ctx: ssl.SSLContext | None = None, server_hostname: str = "mx.example.test") -> None:
        assert self.buf == b"", f"unread data before the TLS handshake: {self.buf!r}"
        ctx = ctx or insecure_tls_context()
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)

    # -- transactions
    def send_message(self, sender: str, rcpts: list[str], message: bytes, pipelined: bool = True) -> Reply:
        """MAIL, RCPTs, DATA (all must succeed), then the message; returns the final reply."""
        cmds = [f"MAIL FROM:<{sender}>"] + [f"RCPT TO:<{r}>" for r in rcpts] + ["DATA"]
        if pipelined:
            self.send("".join(c + "\r\n" for c in cmds))
            replies = [self.read_reply() for _ in cmds]
        else:
            replies = [self.cmd(c) for c in cmds]
        for c, r in zip(cmds, replies):
            assert r.code == (354 if c == "DATA" else 250), f"{c} -> {r}"
        self.send(data_payload(message))
        return self.read_reply()


def insecure_tls_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def dot_stuff(message: bytes) -> bytes:
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)


def data_payload(message: bytes) -> bytes:
    """The DATA body for `message` (CRLF text): dot-stuffed and terminated."""
    body = dot_stuff(message)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def make_message(subject: str = "test", body: str = "Hello.\r\n", headers: list[str] | None = None,
                 sender: str = "sender@origin.example", to: str = "user@example.test") -> bytes:
    hdrs = [f"From: <{sender}>", f"To: <{to}>", f"Subject: {subject}",
            "Message-ID: <" + subject.replace(" ", ".") + f".{time.monotonic_ns()}@origin.example>"]
    hdrs += headers or []
    return ("\r\n".join(hdrs) + "\r\n\r\n" + body).encode()


_QUEUED = re.compile(r"queued as ([A-Za-z0-9]+)")


def queue_id_of(reply: Reply | str) -> str:
    text = reply.text if isinstance(reply, Reply) else reply
    m = _QUEUED.search(text)
    assert m, f"no 'queued as ID' in {text!r}"
    return m.group(1)


def split_stored(raw: bytes, message: bytes) -> bytes:
    """Checks that raw is our added headers followed by exactly `message`; returns the added part."""
    assert raw.endswith(message), (
        f"stored message does not end with the sent bytes\n sent tail: {message[-120:]!r}\n stored tail: {raw[-120:]!r}")
    added = raw[: len(raw) - len(message)]
    # Every added line is a header field or a folded continuation, CRLF-ended.
    assert added.endswith(b"\r\n"), f"added headers not CRLF-terminated: {added!r}"
    for line in added[:-2].split(b"\r\n"):
        assert re.match(rb"^([A-Za-z0-9-]+:|[ \t])", line), f"not a header line in the added part: {line!r}"
    bare = added.replace(b"\r\n", b"")
    assert b"\n" not in bare and b"\r" not in bare, f"bare CR or LF in the added headers: {added!r}"
    assert b"\0" not in added, f"NUL in the added headers: {added!r}"
    long = [l for l in added.split(b"\r\n") if len(l) > 998]
    assert not long, f"added header line over 998 octets (RFC 5322 2.1.1): {long[0][:80]!r}..."
    return added


def wait_until(pred, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
