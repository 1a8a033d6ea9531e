"""Session policy: relaying, recipients, size, hops, command limits (RFC 5321)."""
from __future__ import annotations

import uuid

import pytest

import mxgate_harness as h


# ----------------------------------------------------------------- relay (5)

RELAY_ATTEMPTS = [
    # (RCPT argument, acceptable codes): never 250 for a domain we do not serve.
    ("<victim@{rnd}.example.net>", {554}),
    ("<postmaster@{rnd}.example.net>", {554}),
    ("<@example.test:victim@{rnd}.example.net>", {554}),  # source route must not launder
    ("<victim@[127.0.0.1]>", {554}),
    ("<victim@{rnd}.example.net.>", {501, 554}),
    ("<victim%{rnd}.example.net@{rnd}.example.org>", {554}),
    ("<\"victim@{rnd}.example.net\">", {501, 554}),
]


@pytest.mark.parametrize("rcpt,codes", RELAY_ATTEMPTS, ids=[a for a, _ in RELAY_ATTEMPTS])
def test_relay_refused(mxgate, rcpt, codes):
    d = mxgate()
    rcpt = rcpt.format(rnd="r" + uuid.uuid4().hex[:10])
    with d.session() as c:
        c.cmd("MAIL FROM:<sender@origin.example>").check(250)
        r = c.cmd(f"RCPT TO:{rcpt}")
        assert r.code in codes, f"RCPT TO:{rcpt} -> {r}"
        if r.code == 554:
            assert r.enhanced == "5.7.1", r
        # With no valid recipient, DATA is refused and nothing is queued.
        assert c.cmd("DATA").code in (503, 554)
        c.cmd("NOOP").check(250)
    assert d.queue_ids() == []


def test_postmaster_always_accepted(mxgate):
    d = mxgate()
    rcpts = ["postmaster@list.example.test", "PostMaster@example.test", "postmaster"]
    with d.session() as c:
        c.cmd("MAIL FROM:<sender@origin.example>").check(250)
        for r in rcpts:
            c.cmd(f"RCPT TO:<{r}>").check(250)
        c.cmd("RCPT TO:<nobody@list.example.test>").check(550, "5.1.1")
        c.cmd("DATA").check(354)
        msg = h.make_message("to postmaster")
        c.send(h.data_payload(msg))
        qid = h.queue_id_of(c.expect(250))
    (entry,) = d.queue()
    assert entry.id == qid and entry.rcpts == rcpts, entry.line


def test_trusted_network_may_relay(mxgate):
    d = mxgate({"relay": {"trusted_networks": ["127.0.0.0/8"]}})
    outside = f"someone@r{uuid.uuid4().hex[:8]}.example.net"
    with d.session() as c:
        msg = h.make_message("relay")
        qid = h.queue_id_of(c.send_message("sender@origin.example", [outside], msg).check(250))
    (entry,) = d.queue()
    assert entry.id == qid and entry.rcpts == [outside]


def test_trusted_network_does_not_cover_other_clients(mxgate):
    d = mxgate({"relay": {"trusted_networks": ["127.0.0.2/32"]}})
    with d.session() as c:  # from 127.0.0.1
        c.cmd("MAIL FROM:<sender@origin.example>").check(250)
        c.cmd("RCPT TO:<someone@elsewhere.example.net>").check(554, "5.7.1")
    with d.session(source="127.0.0.2") as c:
        c.cmd("MAIL FROM:<sender@origin.example>").check(250)
        c.cmd("RCPT TO:<someone@elsewhere.example.net>").check(250)


# ----------------------------------------------------------- recipients (6)


def test_explicit_recipient_list(mxgate):
    d = mxgate()
    with d.session() as c:
        c.cmd("MAIL FROM:<sender@origin.example>").check(250)
        c.cmd("RCPT TO:<alice@list.example.test>").check(250)
        c.cmd("RCPT TO:<BOB@List.Example.Test>").check(250)
        c.cmd("RCPT TO:<mallory@list.example.test>").check(550, "5.1.1")
        c.cmd("RCPT TO:<anyone@example.test>").check(250)
        c.cmd("DATA").check(354)
        c.send(h.data_payload(h.make_message("list")))
        qid = h.queue_id_of(c.expect(250))
    (entry,) = d.queue()
    assert entry.id == qid
    assert entry.rcpts == ["alice@list.example.test", "BOB@List.Example.Test", "anyone@example.test"]


def test_only_unknown_recipients_no_message(mxgate):
    d = mxgate()
    with d.session() as c:
        c.cmd("MAIL FROM:<sender@origin.example>").check(250)
        c.cmd("RCPT TO:<mallory@list.example.test>").check(550, "5.1.1")
        c.cmd("DATA").check(554)
        c.cmd("NOOP").check(250)
    assert d.queue_ids() == []


def test_harvesting_closes_session(mxgate):
    d = mxgate({"smtp": {"max_bad_recipients": 3}})
    with d.session() as c:
        c.cmd("MAIL FROM:<sender@origin.example>").check(250)
        c.cmd("RCPT TO:<alice@list.example.test>").check(250)
        c.cmd("RCPT TO:<guess1@list.example.test>").check(550, "5.1.1")
        c.cmd("RCPT TO:<guess2@other.example.net>").check(554, "5.7.1")  # relay denials count too
        c.cmd("RCPT TO:<guess3@list.example.test>").check(421)
        assert c.wait_closed(3), "connection not closed after 421"
    assert d.queue_ids() == []


def test_max_recipients(mxgate):
    d = mxgate({"smtp": {"max_recipients": 3}})
    with d.session() as c:
        c.cmd("MAIL FROM:<sender@origin.example>").check(250)
        for i in range(3):
            c.cmd(f"RCPT TO:<u{i}@example.test>").check(250)
        c.cmd("RCPT TO:<u3@example.test>").check(452, "4.5.3")
        c.cmd("DATA").check(354)
        c.send(h.data_payload(h.make_message("max rcpts")))
        qid = h.queue_id_of(c.expect(250))
    (entry,) = d.queue()
    assert entry.id == qid and entry.rcpts == ["u0@example.test", "u1@example.test", "u2@example.test"]


# ------------------------------------------------------------------ size (7)


def test_size_limit(mxgate):
    d = mxgate({"smtp": {"max_message_size": "64K"}})
    with d.connect() as c:
        c.expect(220)
        ehlo = c.cmd("EHLO size.example").check(250)
        assert "SIZE 65536" in ehlo.lines, ehlo
        c.cmd("MAIL FROM:<a@b.example> SIZE=100000").check(552)
        c.cmd("MAIL FROM:<a@b.example> SIZE=65536").check(250)
        c.cmd("RSET").check(250)
        c.cmd("MAIL FROM:<a@b.example>").check(250)
        c.cmd("RCPT TO:<user@example.test>").check(250)
        c.cmd("DATA").check(354)
        big = h.make_message("big", body=("x" * 98 + "\r\n") * 1024)  # ~100 KB
        c.send(h.data_payload(big))
        c.expect(552, "5.3.4", timeout=10)
        c.cmd("NOOP").check(250)
        # The transaction is over: the session is usable for a new one.
        ok = h.make_message("small")
        qid = h.queue_id_of(c.send_message("a@b.example", ["user@example.test"], ok).check(250))
    assert d.queue_ids() == [qid]


def test_size_limit_boundary(mxgate):
    """A message of exactly max_message_size octets is accepted; one more is not."""
    d = mxgate({"smtp": {"max_message_size": "2K"}})
    head = b"Subject: boundary\r\n\r\n"

    def msg_of(n):
        body = b"y" * (n - len(head) - 2) + b"\r\n"
        m = head + body
        assert len(m) == n
        return m

    with d.session() as c:
        exact = msg_of(2048)
        qid = h.queue_id_of(c.send_message("a@b.example", ["user@example.test"], exact).check(250))
        c.send_message("a@b.example", ["user@example.test"], msg_of(2049)).check(552, "5.3.4")
        c.cmd("NOOP").check(250)
    assert d.queue_ids() == [qid]
    h.split_stored(d.raw(qid), exact)


# ------------------------------------------------------------------ hops (8)


def _with_received(n: int, tag: str, body_received: int = 0) -> bytes:
    hdrs = [f"Received: from hop{i}.example by hop{i + 1}.example;\r\n\tMon, 1 Jan 2024 00:00:0{i % 10} +0000"
            for i in range(n)]
    body = "".join(f"Received: quoted in body {i}\r\n" for i in range(body_received)) + "end\r\n"
    return h.make_message(f"hops {tag}", headers=hdrs, body=body)


def test_hop_limit(mxgate):
    d = mxgate({"smtp": {"max_hops": 3}})
    with d.session() as c:
        c.send_message("a@b.example", ["user@example.test"], _with_received(4, "four")).check(554, "5.4.6")
        c.cmd("NOOP").check(250)
        three = _with_received(3, "three", body_received=5)  # body lines are not headers
        qid = h.queue_id_of(c.send_message("a@b.example", ["user@example.test"], three).check(250))
    assert d.queue_ids() == [qid]
    h.split_stored(d.raw(qid), three)


# --------------------------------------------------------- bad commands (9)


def test_bad_command_limit(mxgate):
    d = mxgate({"smtp": {"max_bad_commands": 3}})
    with d.session() as c:
        c.cmd("FOO").check(500, "5.5.2")
        c.cmd("BAR baz").check(500, "5.5.2")
        c.cmd("NOOP").check(250)  # good commands do not reset or count
        c.cmd("QUUX").check(421)
        assert c.wait_closed(3), "connection not closed after 421"


def test_line_too_long(mxgate):
    d = mxgate()
    with d.session() as c:
        c.cmd("NOOP " + "a" * 1995).check(500, "5.5.2")  # 2002 octets with CRLF
        c.cmd("NOOP").check(250)
        # Exactly max_line_length (1000) octets including CRLF is fine, 1001 is not.
        c.cmd("NOOP " + "b" * 993).check(250)
        c.cmd("NOOP " + "c" * 994).check(500, "5.5.2")
        # A line longer than the read buffer (64 KiB) is skipped to its end.
        c.cmd("NOOP " + "d" * 200_000).check(500, "5.5.2")
        c.cmd("MAIL FROM:<a@b.example>").check(250)


def test_helo_required_and_nested_mail(mxgate):
    d = mxgate()
    with d.connect() as c:
        c.expect(220)
        c.cmd("MAIL FROM:<a@b.example>").check(503)
        c.cmd("HELO plain.example").check(250)
        c.cmd("MAIL FROM:<a@b.example> SIZE=10").check(555)  # ESMTP parameter after HELO
        c.cmd("MAIL FROM:<a@b.example>").check(250)
        c.cmd("MAIL FROM:<a@b.example>").check(503)
        c.cmd("RCPT TO:<user@example.test>").check(250)
        c.cmd("DATA").check(354)
        msg = h.make_message("helo")
        c.send(h.data_payload(msg))
        qid = h.queue_id_of(c.expect(250))
    raw = d.raw(qid)
    assert h.split_stored(raw, msg).startswith(b"Received: from plain.example ")
    assert b" with SMTP " in raw.split(b"\r\n\r\n")[0]
