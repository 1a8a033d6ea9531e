"""The abuse and lists filters, and `mxgatectl blocks` (filters/abuse, filters/lists)."""
from __future__ import annotations

import time

import mxgate_harness as h


def _greeting(d: h.Daemon, source: str | None = None) -> h.Reply:
    with d.connect(source=source) as c:
        r = c.read_reply()
        if r.code in (220, 554):  # after 554 the server waits for QUIT (RFC 5321 3.1)
            c.cmd("QUIT").check(221)
        else:
            assert c.wait_closed(3), f"connection left open after {r}"
        return r


# ---------------------------------------------------------------- abuse (10)


def test_connection_rate_block_and_unblock(mxgate):
    d = mxgate({"filters.abuse": {"connection_rate": 3, "connection_window": "1m", "bad_session_limit": 0}})
    for i in range(3):
        assert _greeting(d).code == 220, f"connection {i + 1} refused"
    r = _greeting(d)
    r.check(421, "4.7.0")
    assert "127.0.0.1" in r.text
    assert d.blocks() == ["127.0.0.1"]
    # Blocked: still refused, and another client address is not affected.
    _greeting(d).check(421, "4.7.0")
    assert _greeting(d, source="127.0.0.2").code == 220
    p = d.ctl("blocks", "remove", "127.0.0.1")
    assert p.returncode == 0
    assert d.blocks() == []
    assert _greeting(d).code == 220, "block lifted but connection still refused"


def test_bad_sessions_block(mxgate):
    d = mxgate({"filters.abuse": {"connection_rate": 0, "bad_session_limit": 2, "bad_session_window": "10m"}})
    for i in range(3):
        assert _greeting(d).code == 220, f"session {i + 1} refused too early"
    # The block is written when the third session ends; poll the store, not the port
    # (a probe connection would itself be a session).
    h.wait_until(lambda: d.blocks() == ["127.0.0.1"], 5, what="127.0.0.1 in `blocks list`")
    _greeting(d).check(421, "4.7.0")


def test_session_with_message_is_not_bad(mxgate):
    d = mxgate({"filters.abuse": {"connection_rate": 0, "bad_session_limit": 1}})
    for i in range(3):
        with d.session() as c:
            c.send_message("a@b.example", ["user@example.test"], h.make_message(f"good {i}")).check(250)
            c.cmd("QUIT").check(221)
    time.sleep(0.2)
    assert d.blocks() == []
    assert _greeting(d).code == 220


def test_ctl_blocks_add_and_remove(mxgate):
    d = mxgate({"filters.abuse": {"connection_rate": 0, "bad_session_limit": 0}})
    d.ctl("blocks", "add", "127.0.0.2", "--for", "1h", "--reason", "manual e2e block")
    out = d.ctl("blocks", "list").stdout.decode()
    assert "127.0.0.2" in out and "manual e2e block" in out, out
    _greeting(d, source="127.0.0.2").check(421, "4.7.0")
    assert _greeting(d).code == 220  # 127.0.0.1 is not blocked
    d.ctl("blocks", "remove", "127.0.0.2")
    assert _greeting(d, source="127.0.0.2").code == 220


def test_ctl_blocks_errors(mxgate):
    d = mxgate()
    assert d.ctl("blocks", "add", "not-an-ip", check=False).returncode == 1
    assert d.ctl("blocks", "remove", "127.0.0.9", check=False).returncode == 1
    assert d.ctl("blocks", check=False).returncode == 2
    assert d.ctl("blocks", "add", "127.0.0.3", "--for", "soon", check=False).returncode == 2
    assert d.ctl("queue", "show", "NOSUCHID", check=False).returncode == 1
    assert d.ctl("nosuchcommand", check=False).returncode == 2


def test_exempt_networks(mxgate):
    d = mxgate({"filters.abuse": {"connection_rate": 1, "exempt_networks": ["127.0.0.1/32"]}})
    for _ in range(3):
        assert _greeting(d).code == 220
    assert d.blocks() == []


# ---------------------------------------------------------------- lists (11)


def test_deny_ip_greeting(mxgate):
    d = mxgate({"filters.lists": {"deny_ips": ["127.0.0.1"]}})
    with d.connect() as c:
        c.expect(554, "5.7.1")
        # RFC 5321 3.1: after a 554 greeting the server waits for QUIT, answering 503.
        c.cmd("EHLO denied.example").check(503)
        c.cmd("MAIL FROM:<a@b.example>").check(503)
        c.cmd("QUIT").check(221)
        assert c.wait_closed(3)
    assert _greeting(d, source="127.0.0.2").code == 220
    assert d.queue_ids() == []


def test_allow_ip_wins_over_deny(mxgate):
    d = mxgate({"filters.lists": {"deny_ips": ["127.0.0.0/8"], "allow_ips": ["127.0.0.2"]}})
    _greeting(d).check(554, "5.7.1")
    assert _greeting(d, source="127.0.0.2").code == 220


def test_deny_senders(mxgate):
    d = mxgate({"filters.lists": {"deny_senders": ["*@spam.example"]}})
    with d.session() as c:
        c.cmd("MAIL FROM:<x@spam.example>").check(550, "5.7.1")
        c.cmd("RCPT TO:<user@example.test>").check(503)  # no transaction was opened
        c.cmd("MAIL FROM:<Someone@SPAM.Example>").check(550, "5.7.1")
        c.cmd("MAIL FROM:<x@sub.spam.example>").check(250)  # *@domain is that domain only
        c.cmd("RSET").check(250)
        c.cmd("MAIL FROM:<>").check(250)  # the null sender matches nothing
        c.cmd("RSET").check(250)
        qid = h.queue_id_of(c.send_message("ok@ham.example", ["user@example.test"], h.make_message("ham")).check(250))
    assert d.queue_ids() == [qid]


def test_bad_rcpt_threshold_makes_session_bad(mxgate):
    """A session that delivers a message but tries bad_rcpt_threshold unknown
    recipients is still a bad session."""
    d = mxgate({"filters.abuse": {"connection_rate": 0, "bad_session_limit": 1, "bad_rcpt_threshold": 2}})
    for i in range(2):
        with d.session() as c:
            c.cmd("MAIL FROM:<a@b.example>").check(250)
            c.cmd("RCPT TO:<guess1@list.example.test>").check(550)
            c.cmd("RCPT TO:<guess2@list.example.test>").check(550)
            c.cmd("RCPT TO:<alice@list.example.test>").check(250)
            c.cmd("DATA").check(354)
            c.send(h.data_payload(h.make_message(f"with guesses {i}")))
            c.expect(250)
            c.cmd("QUIT").check(221)
        if i == 0:
            time.sleep(0.2)
            assert d.blocks() == [], "blocked after one bad session with bad_session_limit = 1"
    h.wait_until(lambda: d.blocks() == ["127.0.0.1"], 5, what="block after two bad sessions")
    _greeting(d).check(421, "4.7.0")
    assert len(d.queue_ids()) == 2


def test_block_expires(mxgate):
    d = mxgate()
    d.ctl("blocks", "add", "127.0.0.1", "--for", "1s", "--reason", "short")
    _greeting(d).check(421, "4.7.0")
    h.wait_until(lambda: _greeting(d).code == 220, 5, interval=0.3, what="a 1s block to expire")
    assert d.blocks() == []


def test_trusted_clients_are_not_rate_limited(mxgate):
    d = mxgate({"relay": {"trusted_networks": ["127.0.0.1/32"]},
                "filters.abuse": {"connection_rate": 2, "bad_session_limit": 1}})
    for _ in range(5):
        assert _greeting(d).code == 220
    assert _greeting(d, source="127.0.0.2").code == 220  # 127.0.0.2 is not trusted: counted
    assert _greeting(d, source="127.0.0.2").code == 220
    _greeting(d, source="127.0.0.2").check(421, "4.7.0")
    assert d.blocks() == ["127.0.0.2"]


def test_block_given_as_ipv4_mapped_ipv6(mxgate):
    """abuse README: keys are canonical; ::ffff:127.0.0.2 is stored and enforced as 127.0.0.2."""
    d = mxgate()
    d.ctl("blocks", "add", "::ffff:127.0.0.2", "--reason", "mapped")
    assert d.blocks() == ["127.0.0.2"]
    _greeting(d, source="127.0.0.2").check(421, "4.7.0")
    d.ctl("blocks", "remove", "::ffff:127.0.0.2")
    assert d.blocks() == []
