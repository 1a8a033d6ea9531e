"""The dmarc filter in the real daemon, with DNS from a static zone: p=reject
without an aligned pass is refused in the session, p=quarantine is held, p=none
and no policy only mark the message, local policy keeps a forwarder's mail, and
every evaluation is stored. (Passing needs the spf or dkim filter: unit tests.)"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import mxgate_harness as h

ZONE = """\
_dmarc.reject.example      TXT "v=DMARC1; p=reject; rua=mailto:dmarc@reject.example"
_dmarc.quarantine.example  TXT "v=DMARC1; p=quarantine"
_dmarc.none.example        TXT "v=DMARC1; p=none"
"""


def _daemon(mxgate, **dmarc) -> h.Daemon:
    d = mxgate(start=False)
    zone = d.root / "zone.txt"
    zone.parent.mkdir(parents=True, exist_ok=True)
    zone.write_text(ZONE)
    d.overrides = {**d.overrides, "dns": {"static_zones": str(zone)},
                   "filters.dmarc": {"enabled": True, **dmarc}}
    return d.start()


def _send(d: h.Daemon, author: str, subject: str = "dmarc"):
    msg = h.make_message(subject, sender=author)
    with d.session() as c:
        r = c.send_message("bounce@forwarder.example", ["user@example.test"], msg)
        c.cmd("QUIT")
    return r, msg


def _added(d: h.Daemon, r: h.Reply, msg: bytes) -> bytes:
    """Our added header fields, unfolded."""
    return h.split_stored(d.raw(h.queue_id_of(r.check(250))), msg).replace(b"\r\n\t", b" ")


def test_reject_policy_is_refused_in_session(mxgate):
    d = _daemon(mxgate)
    r, _ = _send(d, "boss@reject.example")
    r.check(550, "5.7.1")
    assert "reject.example" in r.text, r
    assert d.queue_ids() == []
    # The refusal is logged with the symbol.
    d.wait_log(r"DMARC_FAIL_REJECT")


def test_quarantine_none_and_no_policy(mxgate):
    d = _daemon(mxgate)
    r, msg = _send(d, "boss@quarantine.example", "q")
    added = _added(d, r, msg)
    assert re.search(rb"dmarc=fail \(p=quarantine dis=quarantine\) header\.from=quarantine\.example", added), added
    (entry,) = d.queue()
    assert entry.action == "quarantine"

    r, msg = _send(d, "boss@none.example", "n")
    added = _added(d, r, msg)
    assert re.search(rb"Authentication-Results: mx\.example\.test; dmarc=fail \(p=none dis=none\) header\.from=none\.example", added), added
    assert b"DMARC_FAIL_NONE" in added

    r, msg = _send(d, "someone@nopolicy.example", "x")
    added = _added(d, r, msg)
    assert re.search(rb"dmarc=none \(no DMARC record\) header\.from=nopolicy\.example", added), added


def test_forwarder_network_is_never_rejected(mxgate):
    d = _daemon(mxgate, local_policy_networks=["127.0.0.0/8", "::1"])
    r, msg = _send(d, "boss@reject.example")
    added = _added(d, r, msg)
    assert re.search(rb"dmarc=fail \(p=reject dis=none\)", added), added
    assert b"DMARC_FAIL_OVERRIDDEN" in added
    assert d.queue()[0].action != "quarantine"


def test_reject_off_quarantines(mxgate):
    d = _daemon(mxgate, reject=False)
    r, msg = _send(d, "boss@reject.example")
    added = _added(d, r, msg)
    assert re.search(rb"dmarc=fail \(p=reject dis=quarantine\)", added), added
    assert d.queue()[0].action == "quarantine"


def test_evaluations_are_stored(mxgate):
    if shutil.which("mdb_dump") is None:
        pytest.skip("mdb_dump (lmdb-utils) not installed")
    d = _daemon(mxgate)
    _send(d, "boss@reject.example")[0].check(550)
    _send(d, "boss@none.example")[0].check(250)
    out = subprocess.run(["mdb_dump", "-p", "-s", "dmarc_records", str(d.root / "state" / "store")],
                         capture_output=True, text=True, timeout=20, check=True).stdout
    # mdb_dump -p: after the header, alternate key and value lines, each
    # with one leading space; bytes it cannot print are \xx escapes.
    body = out.split("HEADER=END\n", 1)[1].splitlines()
    pairs = [(body[i].strip(), body[i + 1].strip()) for i in range(0, len(body) - 1, 2) if body[i] != "DATA=END"]
    assert len(pairs) == 2, out
    keys = [k for k, _ in pairs]
    assert keys == sorted(keys) and all(re.fullmatch(r"\d{13}-[0-9a-f]{16}", k) for k in keys), keys
    first = pairs[0][1].replace("\\0a", "\n")
    assert first.startswith("v=1\ntime="), first
    assert "\nheader_from=reject.example\n" in first and "\ndisposition=reject\n" in first, first
    assert "\nsource_ip=127.0.0.1\n" in first and "\nmail_from=bounce@forwarder.example\n" in first, first
    assert "\np=reject\n" in first and "\nrua=mailto:dmarc@reject.example\n" in first, first
    assert "\nheader_from=none.example\n" in pairs[1][1].replace("\\0a", "\n")
