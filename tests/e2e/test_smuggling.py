"""SMTP smuggling: every end-of-DATA look-alike in ../shared/corpora/smtp/smuggling.tsv.

Each row's sequence is sent inside DATA, followed by a smuggled second
transaction and then the real <CRLF>.<CRLF>. The daemon must give exactly one
reply to the end of data, store at most the one message (never the smuggled
one), and stay in step with the client.
"""
from __future__ import annotations

import re

import pytest

import mxgate_harness as h

SMUGGLED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nsmuggled\r\n"


def _unescape(s: str) -> bytes:
    return s.replace("\\r", "\r").replace("\\n", "\n").replace("\\0", "\0").encode("latin-1")


def load_rows():
    path = h.CORPORA.resolve() / "smtp" / "smuggling.tsv"
    if not path.is_file():
        return None
    rows = []
    header = None
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if header is None:
            header = cols
            continue
        row = dict(zip(header, cols))
        rows.append((row["name"], _unescape(row["sequence"])))
    return rows


ROWS = load_rows()
PARAMS = [pytest.param(name, seq, id=name) for name, seq in ROWS] if ROWS else [
    pytest.param(None, None, id="corpus-missing")]


def _has_bare(seq: bytes, ch: bytes) -> bool:
    return ch in seq.replace(b"\r\n", b"")


def _normalized(data: bytes) -> bytes:
    """What normalize mode should store for content with bare LFs (no bare CR): LF -> CRLF."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


@pytest.fixture(scope="module")
def reject_daemon(module_mxgate):
    return module_mxgate(name="smuggle-reject")  # bare_newline defaults to "reject"


@pytest.fixture(scope="module")
def normalize_daemon(module_mxgate):
    return module_mxgate({"smtp": {"bare_newline": "normalize"}}, name="smuggle-normalize")


def _attempt(d: h.Daemon, name: str, seq: bytes):
    """Sends the smuggling attempt; returns (reply to end of data, content sent, new queue entries).

    The content ends "smuggled\r\n\r\n", so the final ".\r\n" makes the real end of data."""
    before = set(d.queue_ids())
    content = (f"From: <sender@origin.example>\r\nTo: <user@example.test>\r\nSubject: smuggle {name}\r\n\r\n"
               "first line\r\nbefore").encode() + seq + SMUGGLED + b"\r\n"
    with d.session("smuggle.example") as c:
        c.send(f"MAIL FROM:<sender@origin.example>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
        c.send(content + b".\r\n")  # content ends in CRLF: this is the real <CRLF>.<CRLF>
        end = c.read_reply()
        # Exactly one reply: a smuggled transaction would produce 250/250/354/250 more.
        extra = c.pending(0.4)
        assert extra == b"", f"{name}: extra replies after the end of data (smuggled commands executed?): {extra!r}"
        noop = c.cmd("NOOP")
        assert noop.code == 250 and noop.enhanced == "2.0.0", f"{name}: session out of step, NOOP got {noop}"
        c.cmd("QUIT").check(221)
    new = [e for e in d.queue() if e.id not in before]
    assert not any(e.sender == "evil@x" for e in d.queue()), f"{name}: the smuggled message was spooled"
    return end, content, new


def _record(name, mode, ok):
    h.SMUGGLING_RESULTS[f"{name}/{mode}"] = "ok" if ok else "fail"


@pytest.mark.parametrize("name,seq", PARAMS)
def test_smuggling_reject_mode(reject_daemon, name, seq):
    if ROWS is None:
        h.corpora_dir("smtp")
    ok = False
    try:
        end, content, new = _attempt(reject_daemon, name, seq)
        if _has_bare(seq, b"\r") or _has_bare(seq, b"\n"):
            end.check(550, "5.5.2")
            assert new == [], f"{name}: refused message still spooled: {new}"
        else:
            # Only CRLF pairs (the NUL row): content, not an end of data.
            assert end.code in (250, 550, 554), f"{name}: {end}"
            if end.code == 250:
                qid = h.queue_id_of(end)
                assert [e.id for e in new] == [qid], f"{name}: expected exactly {qid} new, got {new}"
                raw = reject_daemon.raw(qid)
                h.split_stored(raw, content)
                assert b"MAIL FROM:<evil@x>\r\n" in raw
            else:
                assert new == []
        ok = True
    finally:
        _record(name, "reject", ok)


@pytest.mark.parametrize("name,seq", PARAMS)
def test_smuggling_normalize_mode(normalize_daemon, name, seq):
    if ROWS is None:
        h.corpora_dir("smtp")
    ok = False
    try:
        end, content, new = _attempt(normalize_daemon, name, seq)
        if _has_bare(seq, b"\r"):
            end.check(550, "5.5.2")
            assert new == [], f"{name}: refused message still spooled: {new}"
        else:
            end.check(250)
            qid = h.queue_id_of(end)
            assert [e.id for e in new] == [qid], f"{name}: expected exactly {qid} new, got {new}"
            raw = normalize_daemon.raw(qid)
            stored = h.split_stored(raw, _normalized(content))
            assert stored  # our headers are there
            assert b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nsmuggled\r\n" in raw
            assert re.search(rb"(?<!\r)\n", raw) is None, "bare LF stored in normalize mode"
        ok = True
    finally:
        _record(name, "normalize", ok)


def test_smuggling_corpus_size():
    if ROWS is None:
        h.corpora_dir("smtp")
    assert len(ROWS) == 9, f"smuggling.tsv has {len(ROWS)} rows, the suite was written for 9"


def _send_raw_content(d: h.Daemon, content: bytes) -> h.Reply:
    with d.session("bare.example") as c:
        c.send("MAIL FROM:<sender@origin.example>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        assert [c.read_reply().code for _ in range(3)] == [250, 250, 354]
        c.send(content + b".\r\n")
        r = c.read_reply()
        c.cmd("NOOP").check(250, "2.0.0")
        return r


BARE_LF_MESSAGE = b"Subject: bare lf\nFrom: <sender@origin.example>\n\nline one\nline two\r\n..stuffed after crlf\r\nend\r\n"


def test_plain_bare_lf_message_reject_mode(reject_daemon):
    before = set(reject_daemon.queue_ids())
    _send_raw_content(reject_daemon, BARE_LF_MESSAGE).check(550, "5.5.2")
    assert set(reject_daemon.queue_ids()) == before


def test_plain_bare_lf_message_normalize_mode(normalize_daemon):
    """etc/mxgate.toml: "normalize" stores a bare LF as a line end (like Postfix's
    smtpd_forbid_bare_newline = normalize) instead of refusing the message."""
    before = set(normalize_daemon.queue_ids())
    r = _send_raw_content(normalize_daemon, BARE_LF_MESSAGE)
    r.check(250)
    qid = h.queue_id_of(r)
    assert set(normalize_daemon.queue_ids()) - before == {qid}
    expected = (b"Subject: bare lf\r\nFrom: <sender@origin.example>\r\n\r\nline one\r\nline two\r\n"
                b".stuffed after crlf\r\nend\r\n")
    h.split_stored(normalize_daemon.raw(qid), expected)


def test_plain_bare_cr_message_normalize_mode(normalize_daemon):
    before = set(normalize_daemon.queue_ids())
    _send_raw_content(normalize_daemon, b"Subject: bare cr\r\n\r\nline\rone\r\n").check(550, "5.5.2")
    assert set(normalize_daemon.queue_ids()) == before
