"""SPF through the real daemon: a static DNS zone publishes records for the
loopback client, and the verdicts reach the delivered message's Received-SPF
and Authentication-Results headers; reject_fail refuses at MAIL."""
from __future__ import annotations

import email.parser
from pathlib import Path

import mxgate_harness as h

ZONE = """\
pass.example       TXT  "v=spf1 include:_spf.pass.example -all"
_spf.pass.example  TXT  "v=spf1 ip4:127.0.0.0/8 ip6:::1 -all"
fail.example       TXT  "v=spf1 ip4:192.0.2.0/24 -all exp=why.fail.example"
why.fail.example   TXT  "%{i} is not allowed to send for %{d}"
"""


def spf_daemon(mxgate, **spf):
    d = mxgate(start=False)
    zone = d.root / "zone.txt"
    zone.parent.mkdir(parents=True, exist_ok=True)
    zone.write_text(ZONE)
    d.overrides = {**d.overrides, "dns": {"static_zones": str(zone)},
                   "delivery": {"hold": False},
                   "filters.spf": {"enabled": True, "receiver": "mx.example.test", **spf}}
    d.start()
    return d


def delivered_headers(d: h.Daemon, user: str) -> email.message.Message:
    box = d.root / "mail" / "example.test" / user / "Maildir" / "new"
    h.wait_until(lambda: any(box.glob("*")), 10, what=f"delivery to {user}")
    (f,) = list(box.glob("*"))
    return email.parser.BytesHeaderParser().parsebytes(Path(f).read_bytes())


def unfold(v: str) -> str:
    return " ".join(v.split())


def test_pass_and_fail_reach_the_delivered_headers(mxgate):
    d = spf_daemon(mxgate)
    with d.session(helo="client.pass.example") as c:
        c.send_message("alice@pass.example", ["passuser@example.test"], h.make_message("spf pass")).check(250)
    with d.session(helo="client.fail.example") as c:
        c.send_message("bob@fail.example", ["failuser@example.test"], h.make_message("spf fail")).check(250)

    ok = delivered_headers(d, "passuser")
    rspf = unfold(ok["Received-SPF"])
    assert rspf.startswith("pass ("), rspf
    assert "client-ip=127.0.0.1;" in rspf and "envelope-from=alice@pass.example;" in rspf, rspf
    assert "receiver=mx.example.test;" in rspf and "identity=mailfrom;" in rspf, rspf
    ar = unfold(ok["Authentication-Results"])
    assert ar.startswith("mx.example.test;"), ar
    assert "spf=pass" in ar and "smtp.mailfrom=alice@pass.example" in ar, ar

    bad = delivered_headers(d, "failuser")
    rspf = unfold(bad["Received-SPF"])
    assert rspf.startswith("fail ("), rspf
    assert "spf=fail" in unfold(bad["Authentication-Results"])
    assert "SPF_FAIL" in d.log()


def test_reject_fail_refuses_at_mail_with_the_explanation(mxgate):
    d = spf_daemon(mxgate, reject_fail=True)
    with d.session(helo="client.fail.example") as c:
        r = c.cmd("MAIL FROM:<bob@fail.example>")
        r.check(550, "5.7.23")
        assert "127.0.0.1 is not allowed to send for fail.example" in r.text, r.text
        # A passing sender in the same session is accepted.
        c.cmd("RSET").check(250)
        c.cmd("MAIL FROM:<alice@pass.example>").check(250)
