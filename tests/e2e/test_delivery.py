"""Delivery into the spool: smtplib, swaks, pipelining, STARTTLS (RFC 5321, 2920, 3207)."""
from __future__ import annotations

import re
import shutil
import smtplib
import subprocess
import uuid

import pytest

import mxgate_harness as h


def _check_envelope(d: h.Daemon, qid: str, sender: str, rcpts: list[str]) -> None:
    show = d.show(qid)
    head = show.split("\n\n", 1)[0]
    assert re.search(rf"^from:\s*<{re.escape(sender)}>", head, re.M | re.I), f"sender not in envelope:\n{head}"
    shown_rcpts = re.findall(r"^to:\s*<([^>]*)>", head, re.M | re.I)
    assert shown_rcpts == rcpts, f"recipients {shown_rcpts} != {rcpts}:\n{head}"
    entry = [e for e in d.queue() if e.id == qid]
    assert len(entry) == 1, f"{qid} listed {len(entry)} times in queue list"
    assert entry[0].sender == sender and entry[0].rcpts == rcpts, entry[0].line


def test_smtplib_delivery_is_stored_byte_exact(mxgate):
    d = mxgate()
    token = uuid.uuid4().hex
    # Lines a naive implementation gets wrong: leading dots (stuffed by smtplib),
    # a lone-dot-looking line, trailing spaces, an empty last line, 8-bit text.
    body = (f"token {token}\r\n.leading dot\r\n..two dots\r\n. \r\ntrailing space \r\n"
            "caf\xe9 8bit\r\n\r\n").encode("latin-1")
    msg = h.make_message("delivery", headers=["X-Test: 1"]).split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + body
    rcpts = ["user@example.test", "alice@list.example.test"]
    with smtplib.SMTP(d.host, d.port, local_hostname="client.example", timeout=10) as s:
        code, _ = s.ehlo()
        assert code == 250
        assert s.mail("sender@origin.example")[0] == 250
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, resp = s.data(msg)
        assert code == 250, resp
    qid = h.queue_id_of(resp.decode())
    raw = d.raw(qid)
    added = h.split_stored(raw, msg)
    assert added.startswith(b"Received: from client.example "), added
    received = re.match(rb"Received:(.*?\r\n)(?![ \t])", added, re.S).group(1)
    assert b"[127.0.0.1]" in received, received
    assert b"with ESMTP " in received and qid.encode() in received, received
    assert re.search(rb"^X-Mxgate-Status: mx\.example\.test; action=\w+", added, re.M), added
    _check_envelope(d, qid, "sender@origin.example", rcpts)
    assert d.queue_ids() == [qid]


def test_swaks_delivery(mxgate):
    if not shutil.which("swaks"):
        pytest.skip("swaks not installed")
    d = mxgate()
    token = uuid.uuid4().hex
    p = subprocess.run(["swaks", "--server", f"{d.host}:{d.port}", "--helo", "swaks.example", "--from",
                        "swaks@origin.example", "--to", "someone@example.test", "--header", f"Subject: swaks {token}",
                        "--body", f"body {token}"], capture_output=True, timeout=30)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    qid = h.queue_id_of(out)
    raw = d.raw(qid)
    assert raw.startswith(b"Received: from swaks.example "), raw[:200]
    assert f"Subject: swaks {token}\r\n".encode() in raw and f"body {token}\r\n".encode() in raw
    _check_envelope(d, qid, "swaks@origin.example", ["someone@example.test"])


def test_pipelined_transaction_replies_in_order(mxgate):
    d = mxgate()
    with d.connect() as c:
        c.expect(220)
        ehlo = c.cmd("EHLO pipe.example").check(250)
        assert "PIPELINING" in ehlo.lines
        c.send("MAIL FROM:<p@origin.example>\r\nRCPT TO:<one@example.test>\r\n"
               "RCPT TO:<nobody@list.example.test>\r\nRCPT TO:<two@example.test>\r\nDATA\r\n")
        replies = [c.read_reply() for _ in range(5)]
        assert [r.code for r in replies] == [250, 250, 550, 250, 354], [str(r) for r in replies]
        assert replies[2].enhanced == "5.1.1"
        msg = h.make_message("pipelined")
        c.send(h.data_payload(msg))
        qid = h.queue_id_of(c.expect(250))
        assert c.pending(0.2) == b"", "unexpected extra reply"
        c.cmd("QUIT").check(221)
    h.split_stored(d.raw(qid), msg)
    _check_envelope(d, qid, "p@origin.example", ["one@example.test", "two@example.test"])


def test_pipelined_groups_on_one_connection(mxgate):
    """RFC 2920: RSET/MAIL/RCPT/DATA sent as one group per transaction, three times."""
    d = mxgate()
    sent = {}
    with d.connect() as c:
        c.expect(220)
        c.cmd("EHLO pipe.example").check(250)
        for i in range(3):
            c.send(f"RSET\r\nMAIL FROM:<g{i}@origin.example>\r\nRCPT TO:<r{i}@example.test>\r\nDATA\r\n")
            codes = [c.read_reply().code for _ in range(4)]
            assert codes == [250, 250, 250, 354], f"group {i}: {codes}"
            msg = h.make_message(f"group {i}", body=f"group {i} {uuid.uuid4().hex}\r\n")
            c.send(h.data_payload(msg))
            sent[h.queue_id_of(c.expect(250))] = (f"g{i}@origin.example", msg)
        c.cmd("QUIT").check(221)
    assert sorted(d.queue_ids()) == sorted(sent)
    for qid, (sender, msg) in sent.items():
        h.split_stored(d.raw(qid), msg)


def test_whole_transactions_in_one_write(mxgate):
    """Three complete transactions including their message data and the QUIT in a
    single write: every reply must come, in order, and each message be stored once."""
    d = mxgate()
    msgs = [h.make_message(f"blind {i}", body=f".dot {i}\r\nbody {uuid.uuid4().hex}\r\n") for i in range(3)]
    blob = b""
    for i, m in enumerate(msgs):
        blob += (f"RSET\r\nMAIL FROM:<b{i}@origin.example>\r\nRCPT TO:<r{i}@example.test>\r\nDATA\r\n").encode()
        blob += h.data_payload(m)
    blob += b"QUIT\r\n"
    with d.connect() as c:
        c.expect(220)
        c.cmd("EHLO blind.example").check(250)
        c.send(blob)
        replies = [c.read_reply() for _ in range(3 * 5 + 1)]
        codes = [r.code for r in replies]
        assert codes == [250, 250, 250, 354, 250] * 3 + [221], codes
        assert c.wait_closed(3)
    qids = [h.queue_id_of(replies[5 * i + 4]) for i in range(3)]
    assert len(set(qids)) == 3
    assert sorted(d.queue_ids()) == sorted(qids)
    for qid, m in zip(qids, msgs):
        h.split_stored(d.raw(qid), m)


def test_starttls_smtplib(mxgate):
    d = mxgate()
    token = uuid.uuid4().hex
    msg = h.make_message("tls", body=f"over tls {token}\r\n")
    with smtplib.SMTP(d.host, d.port, local_hostname="tls.example", timeout=10) as s:
        s.ehlo()
        assert s.has_extn("starttls")
        code, _ = s.starttls(context=h.insecure_tls_context())
        assert code == 220
        code, _ = s.ehlo()
        assert code == 250
        assert not s.has_extn("starttls"), "STARTTLS offered again inside TLS"
        s.mail("tls@origin.example")
        s.rcpt("user@example.test")
        code, resp = s.data(msg)
        assert code == 250, resp
        # A second STARTTLS inside TLS is refused with 503.
        code, _ = s.docmd("STARTTLS")
        assert code == 503
    qid = h.queue_id_of(resp.decode())
    raw = d.raw(qid)
    added = h.split_stored(raw, msg)
    assert re.search(rb"^Received: from tls\.example .*?with ESMTPS ", added, re.S), added


def test_starttls_requires_new_ehlo(mxgate):
    """RFC 3207 4.2: after the handshake the session starts over: MAIL needs a new EHLO."""
    d = mxgate()
    with d.session("tls.example") as c:
        c.cmd("STARTTLS").check(220)
        c.starttls()
        c.cmd("MAIL FROM:<x@origin.example>").check(503)
        c.cmd("EHLO tls.example").check(250)
        c.cmd("MAIL FROM:<x@origin.example>").check(250)


def test_starttls_command_injection_is_discarded(mxgate):
    """CVE-2011-0411: commands pipelined after STARTTLS in clear text must not be
    answered inside the TLS session."""
    d = mxgate()
    with d.connect() as c:
        c.expect(220)
        c.cmd("EHLO inject.example").check(250)
        c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@evil.example>\r\n")
        c.expect(220)
        assert c.buf == b"", f"server answered a pipelined command before the handshake: {c.buf!r}"
        c.starttls()
        # Nothing may arrive unasked, and the first reply is to our first command.
        assert c.pending(0.3) == b"", "server sent replies after the handshake to injected commands"
        r = c.cmd("EHLO inject.example")
        assert r.code == 250 and r.lines[0].startswith("mx.example.test"), f"first TLS reply was not to EHLO: {r}"
        # The injected MAIL must not have opened a transaction.
        c.cmd("RCPT TO:<user@example.test>").check(503)
        c.cmd("NOOP").check(250, "2.0.0")
        assert c.pending(0.2) == b""
