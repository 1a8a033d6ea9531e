"""Command and session timeouts: 421 4.4.2, then the connection closes."""
from __future__ import annotations

import time

import pytest

import mxgate_harness as h

TIMEOUTS = {"smtp": {"command_timeout": "1s", "session_timeout": "3s"}}


@pytest.fixture(scope="module")
def slow_daemon(module_mxgate):
    return module_mxgate(TIMEOUTS, name="timeouts")


def _await_timeout(c: h.SmtpClient, started: float, low: float, high: float) -> float:
    r = c.read_reply(timeout=high + 1)
    elapsed = time.monotonic() - started
    r.check(421, "4.4.2")
    assert c.wait_closed(2), "connection not closed after 421 4.4.2"
    assert low <= elapsed <= high, f"421 after {elapsed:.2f}s, expected between {low}s and {high}s"
    return elapsed


def test_idle_after_greeting(slow_daemon):
    with slow_daemon.connect(timeout=6) as c:
        c.expect(220)
        _await_timeout(c, time.monotonic(), 0.8, 2.5)


def test_idle_mid_command_line(slow_daemon):
    with slow_daemon.session() as c:
        c.send("MAIL FROM:<a@b.exa")  # no line end
        _await_timeout(c, time.monotonic(), 0.8, 2.5)


def test_stall_in_data_keeps_nothing(slow_daemon):
    before = set(slow_daemon.queue_ids())
    with slow_daemon.session() as c:
        c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
        c.send(b"Subject: stalled\r\n\r\nhalf a message\r\n")
        _await_timeout(c, time.monotonic(), 0.8, 2.5)
    assert set(slow_daemon.queue_ids()) == before


def test_session_timeout_despite_activity(slow_daemon):
    """A client that keeps sending NOOP never hits command_timeout but is cut at session_timeout."""
    with slow_daemon.connect(timeout=8) as c:
        started = time.monotonic()
        c.expect(220)
        deadline = started + 6
        while time.monotonic() < deadline:
            try:
                c.send("NOOP\r\n")
            except OSError:
                pytest.fail("connection reset before any 421")
            r = c.read_reply(timeout=2)
            if r.code != 250:
                r.check(421, "4.4.2")
                break
            time.sleep(0.4)
        else:
            pytest.fail("no 421 within 6s with session_timeout = 3s")
        elapsed = time.monotonic() - started
        assert c.wait_closed(2)
        assert 2.7 <= elapsed <= 4.5, f"session ended after {elapsed:.2f}s, expected ~3s"


def test_starttls_without_handshake_is_dropped(mxgate):
    """A client that sends STARTTLS and then never completes the handshake (silent,
    or stuck half-way through a ClientHello) must be dropped by the timeouts like
    any other idle client; otherwise it holds a connection slot forever
    (max_connections / max_connections_per_ip). Allowed: command_timeout plus the
    daemon's 10 s final-write grace (with slack: 14 s)."""
    d = mxgate(TIMEOUTS)
    silent = d.session("tls-idle.example", timeout=16)
    partial = d.session("tls-partial.example", timeout=16)
    try:
        silent.cmd("STARTTLS").check(220)
        partial.cmd("STARTTLS").check(220)
        partial.send(b"\x16\x03\x01\x02\x00")  # a TLS record header, then nothing
        started = time.monotonic()
        closed_silent = silent.wait_closed(14)
        closed_partial = partial.wait_closed(max(0.1, 14 - (time.monotonic() - started)))
        elapsed = time.monotonic() - started
        assert closed_silent and closed_partial, (
            f"after {elapsed:.1f}s (command_timeout 1s, session_timeout 3s) the connections are still open: "
            f"silent={'closed' if closed_silent else 'OPEN'}, partial ClientHello={'closed' if closed_partial else 'OPEN'}")
    finally:
        silent.close()
        partial.close()


def test_trickled_data_hits_session_timeout(slow_daemon):
    """One byte every 0.3 s keeps command_timeout (1s) from firing; session_timeout (3s) still ends it."""
    before = set(slow_daemon.queue_ids())
    with slow_daemon.session(timeout=8) as c:
        c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
        started = time.monotonic()
        got = b""
        while time.monotonic() - started < 7 and not got:
            try:
                c.send(b"x")
            except OSError:
                break
            got = c.pending(0.3)
        elapsed = time.monotonic() - started
        assert got.startswith(b"421 4.4.2"), f"expected 421 4.4.2, got {got!r} after {elapsed:.1f}s"
        assert elapsed <= 4.5, f"421 after {elapsed:.1f}s, session_timeout is 3s"
    assert set(slow_daemon.queue_ids()) == before
