"""Policy actions from scores (etc/mxgate.toml [policy]), driven by the lists filter
in "score" mode with the symbol weight set under [symbols]; and envelope details."""
from __future__ import annotations

import re

import pytest

import mxgate_harness as h


def _scored(mxgate, weight: float, policy: dict | None = None) -> h.Daemon:
    return mxgate({"filters.lists": {"deny_senders": ["*@spam.example"], "deny_sender_action": "score"},
                   "policy": policy or {}}, extra=f"[symbols]\nLIST_DENY_SENDER = {weight}\n")


def _send(d, sender="x@spam.example", subject="scored"):
    msg = h.make_message(subject)
    with d.session() as c:
        r = c.send_message(sender, ["user@example.test"], msg)
        c.cmd("NOOP").check(250)
    return r, msg


def test_accept_below_thresholds(mxgate):
    d = _scored(mxgate, 1.0)
    r, msg = _send(d)
    added = h.split_stored(d.raw(h.queue_id_of(r.check(250))), msg)
    assert re.search(rb"^X-Mxgate-Status: .*action=accept; score=1\.00;\s+symbols=LIST_DENY_SENDER", added, re.M), added
    assert b"X-Spam-Flag" not in added
    assert d.queue()[0].action == "accept"


def test_add_header(mxgate):
    d = _scored(mxgate, 6.0)
    r, msg = _send(d)
    added = h.split_stored(d.raw(h.queue_id_of(r.check(250))), msg)
    assert b"\r\nX-Spam-Flag: YES\r\n" in added and b"\r\nX-Spam-Score: 6.00\r\n" in added, added
    assert d.queue()[0].action == "add_header"


def test_tag_subject(mxgate):
    d = _scored(mxgate, 9.0)
    r, msg = _send(d, subject="tag me")
    tagged = msg.replace(b"\r\nSubject: tag me\r\n", b"\r\nSubject: [SPAM] tag me\r\n")
    assert tagged != msg
    h.split_stored(d.raw(h.queue_id_of(r.check(250))), tagged)
    assert d.queue()[0].action == "tag_subject"


def test_reject(mxgate):
    d = _scored(mxgate, 20.0)
    r, _ = _send(d)
    r.check(550, "5.7.1")
    assert "LIST" not in r.text, f"rejection names a rule: {r}"
    assert d.queue_ids() == []
    r, _ = _send(d, sender="ham@ham.example")
    r.check(250)


@pytest.mark.parametrize("action", ["quarantine", "discard"])
def test_quarantine_and_discard(mxgate, action):
    d = _scored(mxgate, 13.0, {action: 12.0})
    r, msg = _send(d)
    qid = h.queue_id_of(r.check(250))
    if action == "discard":
        assert d.queue_ids() == [], "a discarded message was spooled"
    else:
        (entry,) = d.queue()
        assert entry.id == qid and entry.action == "quarantine"
        h.split_stored(d.raw(qid), msg)


def test_status_header_off(mxgate):
    d = mxgate({"policy": {"status_header": ""}})
    r, msg = _send(d, sender="a@b.example")
    added = h.split_stored(d.raw(h.queue_id_of(r.check(250))), msg)
    assert b"X-Mxgate-Status" not in added and added.startswith(b"Received: ")


def test_envelope_parameters_are_kept(mxgate):
    d = mxgate()
    msg = h.make_message("dsn")
    with d.session() as c:
        c.cmd("MAIL FROM:<> RET=HDRS ENVID=abc+2Bdef BODY=8BITMIME SIZE=500").check(250)
        c.cmd("RCPT TO:<u@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@example.test").check(250)
        c.cmd("RCPT TO:<v@example.test> NOTIFY=NEVER").check(250)
        c.cmd("RCPT TO:<w@example.test> NOTIFY=NEVER,SUCCESS").check(501)
        c.cmd("DATA").check(354)
        c.send(h.data_payload(msg))
        qid = h.queue_id_of(c.expect(250))
    show = d.show(qid)
    head = show.split("\n\n", 1)[0]
    assert re.search(r"^from:\s*<>", head, re.M), head
    for needle in ("RET=HDRS", "ENVID=abc+2Bdef", "BODY=8BITMIME", "SIZE=500", "NOTIFY=SUCCESS,FAILURE",
                   "ORCPT=rfc822;u@example.test", "NOTIFY=NEVER"):
        assert needle in head, f"{needle} missing from the envelope:\n{head}"


def test_smtputf8(mxgate):
    d = mxgate()
    sender = "j\u00fcrgen@origin.example"
    rcpt = "\u00fcser@example.test"
    msg = h.make_message("utf8", body="Gr\u00fc\u00dfe\r\n")
    with d.session() as c:
        c.cmd(f"MAIL FROM:<{sender}>".encode()).check(553, "5.6.7")
        c.cmd(f"MAIL FROM:<{sender}> SMTPUTF8".encode()).check(250)
        c.cmd(f"RCPT TO:<{rcpt}>".encode()).check(250)
        c.cmd("DATA").check(354)
        c.send(h.data_payload(msg))
        qid = h.queue_id_of(c.expect(250))
    head = d.show(qid).split("\n\n", 1)[0]
    assert f"<{sender}>" in head and f"<{rcpt}>" in head and "SMTPUTF8" in head, head
    h.split_stored(d.raw(qid), msg)


def test_vrfy_enabled(mxgate):
    d = mxgate({"smtp": {"vrfy": True}})
    with d.session() as c:
        c.cmd("VRFY <alice@list.example.test>").check(250)
        c.cmd("VRFY <anyone@example.test>").check(250)
        c.cmd("VRFY <mallory@list.example.test>").check(550, "5.1.1")
        c.cmd("EXPN staff").check(502)


def test_vrfy_disabled_reveals_nothing(mxgate):
    d = mxgate()
    with d.session() as c:
        assert c.cmd("EHLO again.example").lines.count("VRFY") == 0
        c.cmd("VRFY <alice@list.example.test>").check(252)
        c.cmd("VRFY <mallory@list.example.test>").check(252)


def test_connection_limits_release_slots(mxgate):
    d = mxgate({"smtp": {"max_connections": 3, "max_connections_per_ip": 2}})
    a, b = d.connect(), d.connect()
    try:
        a.expect(220)
        b.expect(220)
        with d.connect() as c:
            c.expect(421, "4.7.0")
            assert c.wait_closed(3)
        with d.connect(source="127.0.0.2") as c:  # another address still gets in
            c.expect(220)
            with d.connect(source="127.0.0.3") as c2:  # but not beyond max_connections
                c2.expect(421, "4.3.2")
        a.cmd("QUIT").check(221)
        assert a.wait_closed(3)
        def slot_free():
            with d.connect() as c:
                r = c.read_reply()
                return r.code == 220
        h.wait_until(slot_free, 3, what="the per-IP slot to be released after QUIT")
    finally:
        a.close()
        b.close()


def test_tls_disabled(mxgate):
    d = mxgate({"tls": {"enabled": False}})
    with d.connect() as c:
        c.expect(220)
        ehlo = c.cmd("EHLO plain.example").check(250)
        assert "STARTTLS" not in ehlo.lines
        c.cmd("STARTTLS").check(502)
        c.cmd("NOOP").check(250)
