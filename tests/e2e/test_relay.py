"""Delivery over SMTP: domain forwarding, smarthost with STARTTLS and AUTH,
MX and backup MX routes, per-recipient splitting, retries after downstream
failures, restarts and crashes. Downstream servers are aiosmtpd instances on
loopback; MX records come from a static zone."""
from __future__ import annotations

import email
import time
import uuid

import pytest

import mxgate_harness as h
from relay_servers import Downstream

FAST = ["2s"]  # retry every 2 seconds: the tests wait for retries


def relay_config(routes: list[dict], zone: str | None = None, **delivery) -> dict:
    cfg = {
        "delivery": {"hold": False, "retry_schedule": FAST, "max_lifetime": "10m", **delivery},
        "domains": [
            {"name": "example.test", "recipients": "accept-all"},
            {"name": "fwd.test", "recipients": "accept-all"},
            {"name": "other.test", "recipients": "accept-all"},
        ],
        "route": routes,
    }
    return cfg


def with_zone(d: h.Daemon, zone_text: str) -> None:
    zone = d.root / "zone.txt"
    zone.parent.mkdir(parents=True, exist_ok=True)
    zone.write_text(zone_text)
    d.overrides = {**d.overrides, "dns": {"static_zones": str(zone)}}


@pytest.fixture
def downstream():
    servers: list[Downstream] = []

    def make(**kw) -> Downstream:
        s = Downstream(**kw)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()


def fwd_route(ds: Downstream, domains=("fwd.test",), **kw) -> dict:
    return {"name": "inside", "domains": list(domains), "type": "forward",
            "hosts": [f"127.0.0.1:{ds.port}"], "tls": "none", **kw}


def send(d: h.Daemon, rcpts: list[str], subject: str = "relay", sender: str = "a@origin.example") -> tuple[str, bytes]:
    msg = h.make_message(subject, body="line one\r\n.dot line\r\n")
    with d.session() as c:
        qid = h.queue_id_of(c.send_message(sender, rcpts, msg).check(250))
    return qid, msg


def test_forward_to_downstream(mxgate, downstream):
    ds = downstream().start()
    d = mxgate(relay_config([fwd_route(ds)]))
    qid, msg = send(d, ["u1@fwd.test", "u2@fwd.test"])
    h.wait_until(lambda: len(ds.received) == 1 or None, 10, what="delivery downstream")
    got = ds.received[0]
    assert got.rcpts == ["u1@fwd.test", "u2@fwd.test"], "one transaction for both recipients"
    assert got.mail_from == "a@origin.example"
    h.split_stored(got.data[got.data.index(b"Received: "):], msg)  # byte-exact, dot line intact
    d.wait_log(rf"{qid}: to=<u2@fwd.test> relay=127\.0\.0\.1\[127\.0\.0\.1\]:{ds.port} status=delivered")
    (entry,) = [e for e in d.queue() if e.id == qid] or [None]
    assert entry is None, "a delivered message is not listed"


def test_downstream_down_then_up_delivers_once(mxgate, downstream):
    ds = downstream()  # not started: connection refused
    d = mxgate(relay_config([fwd_route(ds)]))
    qid, _ = send(d, ["late@fwd.test"])
    d.wait_log(rf"{qid}: to=<late@fwd.test> relay=\S+ status=deferred", timeout=10)
    (entry,) = [e for e in d.queue() if e.id == qid]
    assert entry.status == "deferred" and entry.tries >= 1, entry.line
    ds.start()
    h.wait_until(lambda: len(ds.received) == 1 or None, 90, what="delivery after the downstream came up")
    time.sleep(3)  # another retry round must not send it again
    assert len(ds.messages_for("late@fwd.test")) == 1


def test_4xx_then_250(mxgate, downstream):
    ds = downstream().start()
    ds.rcpt_replies["busy@fwd.test"] = "451 4.3.2 try later"
    d = mxgate(relay_config([fwd_route(ds)]))
    qid, _ = send(d, ["busy@fwd.test", "ok@fwd.test"])
    d.wait_log(rf"{qid}: to=<busy@fwd.test> relay=\S+ status=deferred .*451 4\.3\.2", timeout=10)
    d.wait_log(rf"{qid}: to=<ok@fwd.test> relay=\S+ status=delivered", timeout=10)
    del ds.rcpt_replies["busy@fwd.test"]
    h.wait_until(lambda: ds.messages_for("busy@fwd.test") or None, 30, what="busy recipient delivered on retry")
    assert len(ds.messages_for("ok@fwd.test")) == 1, "the delivered recipient is not sent again"


def test_5xx_fails_the_recipient_and_bounces_with_a_dsn(mxgate, downstream):
    ds = downstream().start()
    ds.rcpt_replies["nobody@fwd.test"] = "550 5.1.1 no such user"
    d = mxgate(relay_config([fwd_route(ds)], bounce_guard="always"))
    qid, msg = send(d, ["nobody@fwd.test"], sender="sender@fwd.test")
    d.wait_log(rf"{qid}: to=<nobody@fwd.test> relay=\S+ status=failed .*550 5\.1\.1 no such user", timeout=10)
    h.wait_until(lambda: ds.messages_for("sender@fwd.test") or None, 15, what="the bounce delivered to the sender")
    (bounce,) = ds.messages_for("sender@fwd.test")
    assert bounce.mail_from in ("", "<>"), "bounces come from the null sender"
    dsn = email.message_from_bytes(bounce.data)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts = list(dsn.walk())
    status = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    assert status, [p.get_content_type() for p in parts]
    fields = status[0].as_string()
    assert "Final-Recipient: rfc822; nobody@fwd.test" in fields, fields
    assert "Action: failed" in fields and "Status: 5.1.1" in fields, fields
    assert "Diagnostic-Code: smtp; 550 5.1.1 no such user" in fields, fields
    headers = [p for p in parts if p.get_content_type() == "text/rfc822-headers"]
    assert headers and "Subject: relay" in headers[0].get_payload(), "the original headers come back"
    # No bounce for the bounce: it was sent from <>.
    assert all(m.mail_from not in ("", "<>") for m in ds.received if m is not bounce)


def test_bounce_guard_drops_bounces_without_spf_pass(mxgate, downstream):
    ds = downstream().start()
    ds.rcpt_replies["nobody@fwd.test"] = "550 5.1.1 no such user"
    d = mxgate(relay_config([fwd_route(ds)]))  # default guard: spf_pass, no SPF filter
    qid, _ = send(d, ["nobody@fwd.test"], sender="sender@fwd.test")
    d.wait_log(rf"{qid}: no bounce: .*SPF", timeout=10)
    time.sleep(1)
    assert ds.messages_for("sender@fwd.test") == []


def test_per_recipient_split_across_routes(mxgate, downstream):
    a = downstream().start()
    b = downstream().start()
    routes = [fwd_route(a, domains=["fwd.test"]),
              {**fwd_route(b, domains=["other.test"]), "name": "other"}]
    d = mxgate(relay_config(routes))
    qid, _ = send(d, ["x@fwd.test", "y@other.test", "z@example.test"])
    h.wait_until(lambda: (a.received and b.received) or None, 10, what="both routes delivered")
    assert a.received[0].rcpts == ["x@fwd.test"] and b.received[0].rcpts == ["y@other.test"]
    d.wait_log(rf"{qid}: to=<z@example.test> relay=local status=delivered")


def test_smarthost_with_starttls_and_auth(mxgate, downstream, tls_cert, tmp_path):
    ds = downstream(tls_cert=tls_cert, auth=("gateway", "s3cret-passw0rd")).start()
    secret = tmp_path / "relay.secret"
    secret.write_text("s3cret-passw0rd\n")
    route = {"name": "provider", "domains": ["*"], "type": "smarthost", "hosts": [f"127.0.0.1:{ds.port}"],
             "tls": "encrypt", "auth_user": "gateway", "auth_password_file": str(secret)}
    d = mxgate({**relay_config([route]), "relay": {"trusted_networks": ["127.0.0.0/8"]}})
    qid, _ = send(d, ["someone@outside.example"])
    h.wait_until(lambda: ds.received or None, 15, what="delivery through the smarthost")
    assert ds.auth_seen and ds.auth_seen[0].endswith(":gateway"), ds.auth_seen
    d.wait_log(rf"{qid}: to=<someone@outside.example> relay=\S+ status=delivered")


def test_smarthost_refuses_auth_without_tls(mxgate, downstream, tmp_path):
    secret = tmp_path / "relay.secret"
    secret.write_text("pw\n")
    d = mxgate(start=False)
    d.overrides = relay_config([{"domains": ["*"], "type": "smarthost", "hosts": ["127.0.0.1:2"],
                                 "tls": "none", "auth_user": "u", "auth_password_file": str(secret)}])
    d.overrides["server"] = {"listen": [f"127.0.0.1:{h.free_port()}"]}
    d.write_config()
    r = d.ctl("check-config", check=False)
    assert r.returncode == 1 and b"AUTH needs TLS" in r.stderr, r.stderr


def test_mx_route_with_static_zone_and_null_mx(mxgate, downstream):
    ds = downstream().start()
    d = mxgate({**relay_config([], mx_port=ds.port), "relay": {"trusted_networks": ["127.0.0.0/8"]}}, start=False)
    with_zone(d, "dest.test MX 10 mx1.dest.test\nmx1.dest.test A 127.0.0.1\n"
                 "nomail.test MX 0 .\n")
    d.start()
    qid, _ = send(d, ["r@dest.test", "r@nomail.test"])
    h.wait_until(lambda: ds.received or None, 10, what="MX delivery")
    assert ds.received[0].rcpts == ["r@dest.test"]
    d.wait_log(rf"{qid}: to=<r@nomail.test> relay=\S+ status=failed .*5\.1\.10", timeout=10)


def test_mistyped_domain_fails_after_dns_error_limit(mxgate):
    d = mxgate({**relay_config([]), "relay": {"trusted_networks": ["127.0.0.0/8"]}}, start=False)
    with_zone(d, "exists.test A 127.0.0.1\n")
    d.start()
    qid, _ = send(d, ["x@typo-domain.test"])
    d.wait_log(rf"{qid}: to=<x@typo-domain.test> relay=\S+ status=deferred", timeout=10)
    d.wait_log(rf"{qid}: to=<x@typo-domain.test> relay=\S+ status=failed .*5\.4\.4 unable to route after 2",
               timeout=15)


def test_backup_mx_holds_until_primary_answers_then_flush(mxgate, downstream):
    primary = downstream()  # down at first
    route = {"domains": ["partner.test"], "type": "backup_mx", "retry_schedule": ["1h"]}
    d = mxgate({**relay_config([route], mx_port=primary.port),
                "domains": [{"name": "partner.test", "recipients": "accept-all"}]}, start=False)
    with_zone(d, "partner.test MX 10 primary.partner.test\npartner.test MX 20 mx.example.test\n"
                 "primary.partner.test A 127.0.0.1\nmx.example.test A 127.0.0.1\n")
    d.start()
    qid, _ = send(d, ["boss@partner.test"])
    d.wait_log(rf"{qid}: to=<boss@partner.test> relay=\S+ status=deferred", timeout=10)
    (entry,) = [e for e in d.queue() if e.id == qid]
    assert entry.status == "deferred" and entry.next.endswith("m"), entry.line  # next try in an hour
    # The admin pauses the domain, the primary comes back, the admin flushes.
    assert d.ctl("queue", "hold", "--domain", "partner.test").stdout.strip() == b"partner.test held"
    primary.start()
    assert d.ctl("queue", "release", "--domain", "partner.test").returncode == 0
    out = d.ctl("queue", "flush", "--domain", "partner.test").stdout.decode()
    assert "1 recipient(s) due now" in out, out
    h.wait_until(lambda: primary.received or None, 10, what="held mail flushed to the primary")


def test_admin_hold_release_and_delete(mxgate, downstream):
    ds = downstream()
    d = mxgate(relay_config([fwd_route(ds)]))
    qid, _ = send(d, ["held@fwd.test"])
    qid2, _ = send(d, ["gone@fwd.test"])
    d.wait_log(rf"{qid2}: to=<gone@fwd.test> relay=\S+ status=deferred", timeout=10)
    assert d.ctl("queue", "hold", qid).stdout.decode().strip() == f"{qid} held"
    assert d.ctl("queue", "delete", qid2).stdout.decode().strip() == f"{qid2} deleted"
    assert [e.status for e in d.queue() if e.id == qid] == ["held"]
    assert all(e.id != qid2 for e in d.queue())
    ds.start()
    time.sleep(4)  # two retry rounds: nothing may go out while held
    assert ds.received == []
    d.ctl("queue", "release", qid)
    h.wait_until(lambda: ds.received or None, 10, what="released message delivered")
    assert [m.rcpts for m in ds.received] == [["held@fwd.test"]]
    r = d.ctl("queue", "hold", "NOSUCHID", check=False)
    assert r.returncode == 1 and b"no queued message NOSUCHID" in r.stderr


def test_restart_mid_queue_and_sigkill_lose_nothing(mxgate, downstream):
    ds = downstream()
    d = mxgate(relay_config([fwd_route(ds)]))
    ids = [send(d, [f"n{i}@fwd.test"])[0] for i in range(20)]
    d.wait_log(rf"{ids[-1]}: to=<n19@fwd.test> relay=\S+ status=deferred", timeout=15)
    d.stop()
    d.start()
    d.kill()
    d.restart_after_kill()
    ds.start()
    h.wait_until(lambda: len({r for m in ds.received for r in m.rcpts}) == 20 or None, 60,
                 what="all 20 recipients delivered after restart and crash")
    per_rcpt = {}
    for m in ds.received:
        for r in m.rcpts:
            per_rcpt[r] = per_rcpt.get(r, 0) + 1
    assert all(n == 1 for n in per_rcpt.values()), per_rcpt
