"""Process life cycle: SIGTERM with sessions open, restart on the same spool."""
from __future__ import annotations

import signal
import time

import pytest

import mxgate_harness as h


def test_sigterm_lets_open_transaction_finish(mxgate):
    d = mxgate()
    msg = h.make_message("finishing after sigterm", body="part one\r\npart two\r\n")
    payload = h.data_payload(msg)
    with d.session() as c:
        c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
        c.send(payload[:20])
        d.signal(signal.SIGTERM)
        d.wait_log(r"signal 15: stopping")
        # New connections are no longer accepted.
        with pytest.raises(OSError):
            h.SmtpClient(d.host, d.port, timeout=2).read_reply(2)
        c.send(payload[20:])
        qid = h.queue_id_of(c.expect(250))
        c.cmd("QUIT").check(221)
    assert d.wait_exit(5) == 0
    d.restart_after_kill()  # same directories
    h.split_stored(d.raw(qid), msg)


def test_sigterm_tells_idle_session_421(mxgate):
    """RFC 5321 3.8: a server being shut down SHOULD send 421 to its clients before
    closing. An idle session must get 421 (at the latest when the 10 s grace ends),
    not a silent disconnect, and the daemon must exit 0 within the grace."""
    d = mxgate()
    c = d.session(timeout=15)
    try:
        started = time.monotonic()
        d.signal(signal.SIGTERM)
        try:
            r = c.read_reply(timeout=12)
        except h.SmtpClosed:
            r = None
        elapsed = time.monotonic() - started
        assert r is not None, f"connection closed after {elapsed:.1f}s without a 421 reply"
        r.check(421)
        assert c.wait_closed(3)
    finally:
        c.close()
    assert d.wait_exit(5) == 0
