"""The DATA phase in detail: transparency (RFC 5321 4.5.2), odd segmentation,
large messages, and the trace header built from client-supplied text."""
from __future__ import annotations

import random
import time
import uuid

import pytest

import mxgate_harness as h


def _tricky_message(tag: str) -> bytes:
    body = ("line one\r\n.\r\n..\r\n...\r\n. \r\n.x\r\n\r\n.\r\n"  # dot lines of every kind
            "CR LF . CR LF inside a line: \\r\\n.\\r\\n\r\n"
            f"tag {tag}\r\n.\r\n")
    return h.make_message(f"tricky {tag}", body=body)


def test_dot_transparency(mxgate):
    d = mxgate()
    msg = _tricky_message("plain")
    with d.session() as c:
        qid = h.queue_id_of(c.send_message("a@b.example", ["user@example.test"], msg).check(250))
        c.cmd("NOOP").check(250, "2.0.0")
    h.split_stored(d.raw(qid), msg)


def test_byte_at_a_time(mxgate):
    """Every byte in its own segment: the end-of-data and dot-unstuffing states
    must carry across reads."""
    d = mxgate()
    msg = _tricky_message("bytewise")
    payload = h.data_payload(msg)
    with d.session() as c:
        c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
        for i in range(len(payload)):
            c.send(payload[i:i + 1])
            if i % 8 == 0 or i > len(payload) - 8:
                time.sleep(0.0005)
        qid = h.queue_id_of(c.expect(250))
        c.cmd("NOOP").check(250, "2.0.0")
    h.split_stored(d.raw(qid), msg)


def test_random_segmentation(mxgate):
    d = mxgate()
    rnd = random.Random(7)
    sent = {}
    with d.session() as c:
        for n in range(5):
            msg = _tricky_message(f"seg{n}") + b"".join(
                (b"." if rnd.random() < 0.3 else b"") + uuid.uuid4().hex.encode() + b"\r\n" for _ in range(200))
            payload = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n"
            c.send(payload)
            assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
            data = h.data_payload(msg)
            pos = 0
            while pos < len(data):
                step = rnd.choice([1, 2, 3, 5, 7, 64, 1000])
                c.send(data[pos:pos + step])
                pos += step
            sent[h.queue_id_of(c.expect(250))] = msg
    for qid, msg in sent.items():
        h.split_stored(d.raw(qid), msg)


def test_large_message(mxgate):
    """~6 MB with dot lines spread through it: many read chunks, exact storage."""
    d = mxgate()
    rnd = random.Random(3)
    lines = []
    size = 0
    while size < 6 * 1024 * 1024:
        l = ("." if rnd.random() < 0.05 else "") + "".join(rnd.choice("abcdefgh .") for _ in range(rnd.randint(0, 200)))
        lines.append(l)
        size += len(l) + 2
    msg = h.make_message("large", body="\r\n".join(lines) + "\r\n")
    with d.session(timeout=30) as c:
        qid = h.queue_id_of(c.send_message("a@b.example", ["user@example.test"], msg).check(250))
    h.split_stored(d.raw(qid), msg)


def test_empty_message(mxgate):
    d = mxgate()
    with d.session() as c:
        c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
        c.send(".\r\n")  # the CRLF of DATA itself precedes the dot
        qid = h.queue_id_of(c.expect(250))
    h.split_stored(d.raw(qid), b"")


HELO_TEXTS = {
    "bare-cr": b"evil.example\rX-Injected: yes",
    "nul": b"nul\x00byte.example",
    "over-long": b"a" * 993,  # fills max_line_length: EHLO + 993 + CRLF = 1000 octets
}


@pytest.mark.parametrize("name", list(HELO_TEXTS))
def test_helo_text_cannot_corrupt_received(mxgate, name):
    """Whatever the client says in EHLO ends up in our Received header. It must
    either be refused (501: not a domain or address literal, RFC 5321 4.1.1.1) or
    made safe: the header we add must not contain a bare CR, a NUL, or a line over
    998 octets (RFC 5322 2.1.1, 2.2)."""
    d = mxgate()
    msg = h.make_message(f"helo {name}")
    with d.connect() as c:
        c.expect(220)
        r = c.cmd(b"EHLO " + HELO_TEXTS[name])
        if r.code == 501:
            return
        r.check(250)
        qid = h.queue_id_of(c.send_message("a@b.example", ["user@example.test"], msg).check(250))
    h.split_stored(d.raw(qid), msg)
