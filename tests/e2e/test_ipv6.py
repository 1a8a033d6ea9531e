"""Listening on IPv6 loopback ([::1]:PORT), alone and beside IPv4."""
from __future__ import annotations

import re
import smtplib

import pytest

import mxgate_harness as h

pytestmark = pytest.mark.skipif(not h.ipv6_loopback_available(), reason="::1 is not available on this host")


def test_ipv6_listen_and_deliver(mxgate):
    d = mxgate(listen=["[::1]:{port}"])
    assert d.host == "::1"
    msg = h.make_message("over ipv6")
    with smtplib.SMTP("::1", d.port, local_hostname="v6.example", timeout=10) as s:
        s.ehlo()
        s.mail("v6@origin.example")
        s.rcpt("user@example.test")
        code, resp = s.data(msg)
        assert code == 250, resp
    qid = h.queue_id_of(resp.decode())
    added = h.split_stored(d.raw(qid), msg)
    assert re.match(rb"Received: from v6\.example \([^)]*\[::1\]\)", added), added
    assert re.search(r"^client:.*\[::1\]", d.show(qid), re.M)


def test_ipv4_and_ipv6_side_by_side(mxgate):
    d = mxgate(listen=["127.0.0.1:{port}", "[::1]:{port}"])
    with h.SmtpClient("::1", d.port) as c:
        c.expect(220)
        c.cmd("QUIT").check(221)
    with h.SmtpClient("127.0.0.1", d.port) as c:
        c.expect(220)
        c.cmd("QUIT").check(221)


def test_ipv6_client_in_lists(mxgate):
    d = mxgate({"filters.lists": {"deny_ips": ["::1/128"]}}, listen=["127.0.0.1:{port}", "[::1]:{port}"])
    with h.SmtpClient("::1", d.port) as c:
        c.expect(554, "5.7.1")
        c.cmd("QUIT").check(221)
    with h.SmtpClient("127.0.0.1", d.port) as c:
        c.expect(220)


def test_ipv6_block(mxgate):
    d = mxgate(listen=["127.0.0.1:{port}", "[::1]:{port}"])
    d.ctl("blocks", "add", "::1", "--reason", "v6 block")
    assert d.blocks() == ["::1"]
    with h.SmtpClient("::1", d.port) as c:
        c.expect(421, "4.7.0")
    with h.SmtpClient("127.0.0.1", d.port) as c:
        c.expect(220)
