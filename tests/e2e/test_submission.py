"""The submission listener (RFC 6409) with SMTP AUTH (RFC 4954; PLAIN, LOGIN).

Clients are Python's smtplib where it fits (it is what most scripts use) and
the raw SmtpClient for exchanges smtplib cannot express (cancel, bad base64).
Passwords are hashed by `mxgatectl user add`, so every test that logs in also
exercises it. argon2id is slow on purpose: each check costs a few hundred ms.
"""
from __future__ import annotations

import base64
import os
import signal
import smtplib
import stat
import subprocess
import time
from pathlib import Path

import pytest

import mxgate_harness as h

ALICE, ALICE_PW = "alice", "alice's long password"
# crypt(3) yescrypt of "correct horse battery" (as written to /etc/shadow).
CAROL_YESCRYPT = "carol:$y$j9T$tQJpHO3fubE.wnLIlIQ7v/$UqmkqzqQ991k1nwQrt6khQ56DLTseG7f5PyiNa5Bez4"
CAROL_PW = "correct horse battery"


def ctl_user(config: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    """mxgatectl user ..., with password on standard input when given."""
    cmd = [str(h.mxgatectl_bin()), "-c", str(config), "user", *args]
    if password is not None:
        cmd.append("--password-stdin")
    return subprocess.run(cmd, input=(password + "\n").encode() if password is not None else b"",
                          capture_output=True, timeout=30)


def start(factory, tmp: Path, submission: dict | None = None, overrides: dict | None = None,
          users: list[tuple[str, str]] = ((ALICE, ALICE_PW),), extra_lines: list[str] = ()) -> h.Daemon:
    """A daemon with a submission listener on its own port and a users file made by mxgatectl."""
    users_file = tmp / "users"
    users_file.write_text("".join(line + "\n" for line in extra_lines))
    for name, pw in users:
        p = ctl_user(Path("/nonexistent.toml"), "add", name, "--file", str(users_file), password=pw)
        assert p.returncode == 0, p.stderr.decode()
    port = h.free_port()
    cfg = {"submission": {"listen": [f"127.0.0.1:{port}"], "users_file": str(users_file),
                          **(submission or {})}}
    cfg.update(overrides or {})
    d = factory(cfg)
    d.sub_port = port
    d.users_file = users_file
    return d


def smtp(d: h.Daemon, tls: bool = True, port: int | None = None) -> smtplib.SMTP:
    s = smtplib.SMTP("127.0.0.1", port or d.sub_port, local_hostname="client.example", timeout=15)
    s.ehlo()
    if tls:
        s.starttls(context=h.insecure_tls_context())
        s.ehlo()
    return s


def auth(s: smtplib.SMTP, user: str, password: str, mech: str = "PLAIN", initial: bool = True):
    """One AUTH exchange (smtplib's login() would retry with other mechanisms)."""
    s.user, s.password = user, password
    obj = s.auth_plain if mech == "PLAIN" else s.auth_login
    return s.auth(mech, obj, initial_response_ok=initial)


def raw_tls(d: h.Daemon, port: int | None = None) -> h.SmtpClient:
    c = h.SmtpClient("127.0.0.1", port or d.sub_port, timeout=15)
    c.expect(220)
    c.cmd("EHLO client.example").check(250)
    c.cmd("STARTTLS").check(220)
    c.starttls()
    c.cmd("EHLO client.example").check(250)
    return c


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def reload(d: h.Daemon) -> str:
    off = d.log_size()
    d.signal(signal.SIGHUP)
    return d.wait_log(r"reload: .* loaded|reload failed.*", off, timeout=15).group(0)


@pytest.fixture(scope="module")
def sub(module_mxgate, tmp_path_factory):
    """Shared by the tests that leave no state behind; yescrypt user carol too."""
    return start(module_mxgate, tmp_path_factory.mktemp("sub"), extra_lines=[CAROL_YESCRYPT])


def test_auth_offered_only_after_starttls(sub):
    with smtplib.SMTP("127.0.0.1", sub.sub_port, local_hostname="client.example", timeout=15) as s:
        s.ehlo()
        assert not s.has_extn("auth"), s.esmtp_features
        assert s.has_extn("starttls")
        assert s.docmd("AUTH", "PLAIN " + b64(f"\0{ALICE}\0{ALICE_PW}")) == (
            538, b"5.7.11 Encryption required for requested authentication mechanism")
        code, msg = s.docmd("MAIL", "FROM:<alice@example.test>")
        assert (code, msg[:5]) == (530, b"5.7.0"), msg
        s.starttls(context=h.insecure_tls_context())
        s.ehlo()
        assert s.has_extn("auth")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        code, msg = s.docmd("MAIL", "FROM:<alice@example.test>")
        assert (code, msg) == (530, b"5.7.0 Authentication required")


@pytest.mark.parametrize("mech,initial", [("PLAIN", True), ("PLAIN", False), ("LOGIN", True), ("LOGIN", False)])
def test_login(sub, mech, initial):
    with smtp(sub) as s:
        code, msg = auth(s, ALICE, ALICE_PW, mech, initial)
        assert (code, msg) == (235, b"2.7.0 Authentication successful")
        # RFC 4954 4: once authenticated, AUTH is refused.
        assert s.docmd("AUTH", "PLAIN " + b64(f"\0{ALICE}\0{ALICE_PW}"))[0] == 503


def test_yescrypt_hash_from_shadow(sub):
    with smtp(sub) as s:
        assert auth(s, "carol", CAROL_PW, "LOGIN")[0] == 235
    with smtp(sub) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            auth(s, "carol", CAROL_PW + "x")
        assert e.value.smtp_code == 535


def test_wrong_password_and_unknown_user_535_alike(sub):
    off = sub.log_size()
    times = {}
    for user in (ALICE, "nobody"):
        with smtp(sub) as s:
            t = time.monotonic()
            with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                auth(s, user, "not the password 123")
            times[user] = time.monotonic() - t
            assert (e.value.smtp_code, e.value.smtp_error) == (535, b"5.7.8 Authentication credentials invalid")
    # An unknown user costs a full argon2id check too (no enumeration by timing).
    assert times["nobody"] > times[ALICE] / 4, times
    log = sub.log_since(off)
    assert 'failed for user "alice" from unknown[127.0.0.1]' in log, log
    assert 'failed for user "nobody" from unknown[127.0.0.1]' in log, log
    assert "not the password" not in log


def test_exchange_errors(sub):
    with raw_tls(sub) as c:
        c.cmd("AUTH LOGIN").check(334)
        c.cmd("*").check(501)  # cancelled
        c.cmd("AUTH PLAIN").check(334)
        c.cmd("not base64!").check(501, "5.5.2")
        c.cmd("AUTH LOGIN ab@%").check(501, "5.5.2")
        c.cmd("AUTH CRAM-MD5").check(504, "5.5.4")
        c.cmd("AUTH").check(501)
        # authzid must be empty or the user itself.
        c.cmd("AUTH PLAIN " + b64(f"admin\0{ALICE}\0{ALICE_PW}")).check(535, "5.7.8")
        c.cmd("AUTH PLAIN " + b64(f"{ALICE}\0{ALICE}\0{ALICE_PW}")).check(235, "2.7.0")


def test_relay_only_when_authenticated(sub):
    msg = h.make_message("submitted", sender="alice@example.test", to="friend@elsewhere.example")
    # The MX listener relays for nobody (relay.trusted_networks is empty).
    with sub.session() as c:
        c.cmd("MAIL FROM:<alice@example.test>").check(250)
        c.cmd("RCPT TO:<friend@elsewhere.example>").check(554, "5.7.1")
        # ... and does not offer AUTH (submission.auth_on_mx = false).
        c.cmd("STARTTLS").check(220)
        c.starttls()
        assert not any(l.startswith("AUTH") for l in c.cmd("EHLO client.example").check(250).lines)
        c.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0{ALICE_PW}")).check(502)
    with smtp(sub) as s:
        assert auth(s, ALICE, ALICE_PW)[0] == 235
        s.mail("alice@example.test")
        assert s.rcpt("friend@elsewhere.example")[0] == 250
        code, resp = s.data(msg)
        assert code == 250, resp
    qid = h.queue_id_of(resp.decode())
    added = h.split_stored(sub.raw(qid), msg)
    assert b"with ESMTPSA id " + qid.encode() in added, added
    assert f"{qid}: client=unknown[127.0.0.1] user=<alice>" in sub.log()


def test_auth_on_mx_and_not_during_a_transaction(mxgate, tmp_path):
    d = start(mxgate, tmp_path, submission={"auth_on_mx": True})
    with raw_tls(d, port=d.port) as c:
        assert "AUTH PLAIN LOGIN" in c.cmd("EHLO client.example").lines
        # Unauthenticated mail for our own domains still goes in on the MX port.
        c.cmd("MAIL FROM:<someone@origin.example>").check(250)
        c.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0{ALICE_PW}")).check(503)
        c.cmd("RSET").check(250)
        c.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0{ALICE_PW}")).check(235)
        c.cmd("MAIL FROM:<alice@example.test>").check(250)
        c.cmd("RCPT TO:<friend@elsewhere.example>").check(250)


def test_too_many_failures_in_a_session_disconnect(mxgate, tmp_path):
    d = start(mxgate, tmp_path, submission={"max_auth_failures": 2})
    with raw_tls(d) as c:
        c.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0wrong password 1")).check(535)
        c.cmd("AUTH LOGIN " + b64(ALICE)).check(334)
        c.cmd(b64("wrong password 2")).check(421, "4.7.0")
        assert c.wait_closed(5)


def test_repeated_failed_logins_block_the_ip(mxgate, tmp_path):
    d = start(mxgate, tmp_path, submission={"max_auth_failures": 1},
              overrides={"filters.abuse": {"connection_rate": 0, "bad_session_limit": 2}})
    for _ in range(3):
        with raw_tls(d) as c:
            c.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0guess guess guess")).check(421)
    d.wait_log(r"abuse: blocked 127\.0\.0\.1 .*bad sessions")
    assert "127.0.0.1" in d.blocks()
    with h.SmtpClient("127.0.0.1", d.sub_port) as c:
        c.expect(421, "4.7.0")


def test_failed_logins_count_even_when_mail_follows(mxgate, tmp_path):
    """A session that guesses, then logs in and sends, is still bad: failures are counted
    on their own (filters.abuse.bad_auth_threshold), not only sessions without mail."""
    d = start(mxgate, tmp_path, overrides={"filters.abuse": {"connection_rate": 0, "bad_session_limit": 1}})
    msg = h.make_message("after a typo", sender="alice@example.test")
    # Good sessions (even ones without a message) do not count.
    for send in (False, True):
        with smtp(d) as s:
            assert auth(s, ALICE, ALICE_PW)[0] == 235
            if send:
                s.sendmail("alice@example.test", ["user@example.test"], msg)
    for i in range(2):
        off = d.log_size()
        with smtp(d) as s:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                auth(s, ALICE, "typo typo typo")
            assert auth(s, ALICE, ALICE_PW)[0] == 235
            s.sendmail("alice@example.test", ["user@example.test"], msg)
        d.wait_log(r"session \d+: disconnect from", off)
        if i == 0:
            assert d.blocks() == [], "one bad session is within bad_session_limit = 1"
    d.wait_log(r"abuse: blocked 127\.0\.0\.1 ")
    assert d.blocks() == ["127.0.0.1"]


def test_ctl_user_add_passwd_del_and_reload(mxgate, tmp_path):
    d = start(mxgate, tmp_path)
    cfg = d.config_path
    # Weak, duplicate and non-terminal cases are refused with a reason, and change nothing.
    before = d.users_file.read_bytes()
    p = ctl_user(cfg, "add", "bob", password="short")
    assert p.returncode == 1 and b"at least 12 characters" in p.stderr, p
    p = ctl_user(cfg, "add", "ALICE", password="another long password")
    assert p.returncode == 1 and b"exists" in p.stderr, p
    p = ctl_user(cfg, "add", "bob")  # stdin is not a terminal and no --password-stdin
    assert p.returncode == 1 and b"--password-stdin" in p.stderr, p
    p = ctl_user(cfg, "passwd", "nobody", password="another long password")
    assert p.returncode == 1 and b"no user nobody" in p.stderr, p
    assert ctl_user(cfg, "add", "bad:name", password="another long password").returncode == 1
    assert d.users_file.read_bytes() == before

    p = ctl_user(cfg, "add", "bob@example.test", password="bob's long password")
    assert p.returncode == 0, p.stderr
    assert b"SIGHUP" in p.stdout
    assert stat.S_IMODE(os.stat(d.users_file).st_mode) == 0o640
    listing = ctl_user(cfg, "list").stdout.decode()
    assert [l.split() for l in listing.splitlines()[1:3]] == [["alice", "argon2id"], ["bob@example.test", "argon2id"]]

    # Not known until the daemon reloads.
    with smtp(d) as s, pytest.raises(smtplib.SMTPAuthenticationError):
        auth(s, "bob@example.test", "bob's long password")
    assert "loaded" in reload(d)
    with smtp(d) as s:
        assert auth(s, "Bob@Example.test", "bob's long password", "LOGIN")[0] == 235

    assert ctl_user(cfg, "passwd", "bob@example.test", password="bob's new long password").returncode == 0
    reload(d)
    with smtp(d) as s, pytest.raises(smtplib.SMTPAuthenticationError):
        auth(s, "bob@example.test", "bob's long password")
    with smtp(d) as s:
        assert auth(s, "bob@example.test", "bob's new long password")[0] == 235

    assert ctl_user(cfg, "del", "bob@example.test").returncode == 0
    reload(d)
    with smtp(d) as s, pytest.raises(smtplib.SMTPAuthenticationError):
        auth(s, "bob@example.test", "bob's new long password")


def test_reload_with_a_broken_users_file_keeps_the_old_users(mxgate, tmp_path):
    d = start(mxgate, tmp_path)
    with open(d.users_file, "a") as f:
        f.write("# fine\nmallory:plaintext-password\n")
    line = reload(d)
    assert f"{d.users_file}:3: user mallory: not a password hash" in line, line
    assert d.alive()
    with smtp(d) as s:
        assert auth(s, ALICE, ALICE_PW)[0] == 235
    # --check-config reports the same place.
    p = subprocess.run([str(h.mxgate_bin()), "--check-config", "-c", str(d.config_path)],
                       capture_output=True, timeout=30)
    assert p.returncode == 1 and f"{d.users_file}:3:".encode() in p.stderr, p
