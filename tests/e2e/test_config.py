"""Configuration validation (--check-config, start-up) and SIGHUP reload."""
from __future__ import annotations

import re
import signal
import socket
import subprocess

import pytest

import mxgate_harness as h

GOOD = """\
[server]
hostname = "mx.example.test"
listen = ["127.0.0.1:2525"]
user = ""
state_dir = "state"
spool_dir = "spool"

[smtp]
banner = "ESMTP checked"
max_message_size = "10M"

[tls]
enabled = false

[[domains]]
name = "example.test"
recipients = "accept-all"

[filters.lists]
deny_senders = ["*@spam.example"]

[symbols]
LIST_DENY_SENDER = 25.0
"""


def _line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in config")


def _insert_after(text: str, anchor: str, new: str) -> str:
    lines = text.splitlines()
    i = lines.index(anchor)
    return "\n".join(lines[: i + 1] + [new] + lines[i + 1:]) + "\n"


BAD_CASES = {
    "unknown-key": (lambda t: _insert_after(t, "[smtp]", 'max_mesage_size = "1M"'), 'max_mesage_size'),
    "wrong-type": (lambda t: _insert_after(t, "[smtp]", 'max_recipients = "many"'), 'max_recipients'),
    "syntax-error": (lambda t: _insert_after(t, "[smtp]", 'banner2 = "unterminated'), 'unterminated'),
    "unknown-filter": (lambda t: t + '\n[filters.nosuch]\nenabled = true\n', '[filters.nosuch]'),
    "unknown-symbol": (lambda t: _insert_after(t, "[symbols]", 'NO_SUCH_SYMBOL = 3.0'), 'NO_SUCH_SYMBOL'),
    "bad-duration": (lambda t: _insert_after(t, "[smtp]", 'command_timeout = "soon"'), 'command_timeout'),
    "bad-enum": (lambda t: _insert_after(t, "[smtp]", 'bare_newline = "sometimes"'), 'bare_newline'),
    "bad-network": (lambda t: t + '\n[relay]\ntrusted_networks = ["10.0.0.0/33"]\n', 'trusted_networks'),
    "bad-listen": (lambda t: t.replace('listen = ["127.0.0.1:2525"]', 'listen = ["127.0.0.1"]'), 'listen ='),
    "empty-domain": (lambda t: t + '\n[[domains]]\nname = "empty.example"\n', None),
}


def _check_config(tmp_path, text: str, name: str = "bad.toml"):
    (tmp_path / name).write_text(text)
    p = subprocess.run([str(h.mxgate_bin()), "--check-config", "-c", name], cwd=tmp_path, capture_output=True,
                       timeout=20)
    return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


def test_good_config(tmp_path):
    rc, out = _check_config(tmp_path, GOOD, "good.toml")
    assert rc == 0 and "good.toml: ok" in out, out


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_config_names_file_and_line(tmp_path, case):
    make, needle = BAD_CASES[case]
    text = make(GOOD)
    rc, out = _check_config(tmp_path, text)
    assert rc == 1, f"exit {rc}, output:\n{out}"
    m = re.search(r"^bad\.toml:(\d+): (.+)$", out, re.M)
    assert m, f"no 'bad.toml:LINE: message' in output:\n{out}"
    if needle is None:  # the error belongs to the [[domains]] entry: its header or a key in it
        want = {len(text.splitlines()) - 1, len(text.splitlines())}
    else:
        want = {_line_of(text, needle)}
        if needle.startswith("[filters."):
            want.add(_line_of(text, needle) + 1)  # the table header or its first key
    assert int(m.group(1)) in want, f"error reported at line {m.group(1)}, expected {sorted(want)}:\n{out}"


def test_ctl_check_config_agrees(tmp_path):
    (tmp_path / "good.toml").write_text(GOOD)
    p = h.run_ctl(tmp_path / "good.toml", "check-config")
    assert b": ok" in p.stdout
    (tmp_path / "bad.toml").write_text(BAD_CASES["unknown-key"][0](GOOD))
    p = h.run_ctl(tmp_path / "bad.toml", "check-config", check=False)
    assert p.returncode == 1
    assert re.search(rb"bad\.toml:\d+: ", p.stdout + p.stderr), p


def test_daemon_refuses_bad_config_at_start(tmp_path):
    (tmp_path / "bad.toml").write_text(BAD_CASES["wrong-type"][0](GOOD))
    p = subprocess.run([str(h.mxgate_bin()), "-c", "bad.toml"], cwd=tmp_path, capture_output=True, timeout=20)
    assert p.returncode == 1
    assert re.search(rb"bad\.toml:\d+: smtp\.max_recipients", p.stdout + p.stderr), p


def test_port_in_use_exits_2(mxgate, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        d = mxgate(listen=[f"127.0.0.1:{port}"], start=False)
        d.auto_port = False
        d.port = port
        d.write_config()
        with pytest.raises(AssertionError, match="status 2"):
            d.start(timeout=5)


def test_reload(mxgate):
    d = mxgate({"smtp": {"banner": "ESMTP before-reload"}})
    good_text = d.config_path.read_text()
    with d.connect() as c:
        assert c.expect(220).text == "mx.example.test ESMTP before-reload"
    with d.session() as early:  # a session open across both reloads
        # 1. A broken file is refused with file:line and the old settings stay.
        bad = _insert_after(good_text.rstrip("\n"), "[smtp]", 'max_mesage_size = "1M"')
        bad_line = _line_of(bad, "max_mesage_size")
        d.config_path.write_text(bad)
        off = d.log_size()
        d.signal(signal.SIGHUP)
        m = d.wait_log(r"reload failed.*", off)
        assert f"{d.config_path}:{bad_line}:" in m.group(0), m.group(0)
        assert d.alive()
        with d.connect() as c:
            assert c.expect(220).text == "mx.example.test ESMTP before-reload"
        # 2. A fixed file with a new banner and a new domain applies to new sessions.
        d.overrides = h.merge_config(d.overrides, {
            "smtp": {"banner": "ESMTP after-reload", "max_message_size": "1M"},
            "domains": [{"name": "example.test", "recipients": "accept-all"},
                        {"name": "new.example.test", "recipients": "accept-all"}]})
        d.write_config()
        off = d.log_size()
        d.signal(signal.SIGHUP)
        d.wait_log(r"reload: .* loaded", off)
        with d.connect() as c:
            assert c.expect(220).text == "mx.example.test ESMTP after-reload"
            assert "SIZE 1048576" in c.cmd("EHLO x.example").check(250).lines
            c.cmd("MAIL FROM:<a@b.example> SIZE=2000000").check(552)
            c.cmd("MAIL FROM:<a@b.example>").check(250)
            c.cmd("RCPT TO:<u@new.example.test>").check(250)
        # The early session still works and can deliver.
        early.send_message("a@b.example", ["user@example.test"], h.make_message("across reload")).check(250)
    assert len(d.queue_ids()) == 1


def _served_cert(d: h.Daemon) -> bytes:
    with d.session("cert.example") as c:
        c.cmd("STARTTLS").check(220)
        c.starttls()
        return c.sock.getpeercert(binary_form=True)


def _der(pem_path) -> bytes:
    import ssl

    return ssl.PEM_cert_to_DER_cert(pem_path.read_text())


def test_reload_picks_up_renewed_certificate(mxgate, tmp_path, tls_cert):
    """`mxgate --help`: only listen addresses, threads, directories and the user
    need a restart; so a certificate renewed in place (what ACME clients do) must
    be served after SIGHUP, or the reload must at least say it was not applied."""
    import shutil

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(tls_cert[0], cert)
    shutil.copy(tls_cert[1], key)
    d = mxgate({"tls": {"cert_file": str(cert), "key_file": str(key)}})
    assert _served_cert(d) == _der(cert)
    new_cert, new_key = tmp_path / "new-cert.pem", tmp_path / "new-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=renewed.example", "-keyout", str(new_key), "-out", str(new_cert)],
                   check=True, capture_output=True, timeout=60)
    shutil.copy(new_key, key)
    shutil.copy(new_cert, cert)
    off = d.log_size()
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: .* loaded|reload failed", off)
    log = d.log_since(off)
    served = _served_cert(d)
    assert served == _der(cert) or re.search(r"warn.*tls", log, re.I), (
        "after SIGHUP the daemon still serves the old certificate and the log does not say TLS "
        f"settings need a restart:\n{log}")


def test_reload_warns_about_listen_change(mxgate):
    d = mxgate()
    old_port = d.port
    d.overrides = h.merge_config(d.overrides, {"server": {"listen": [f"127.0.0.1:{h.free_port()}"]}})
    d.write_config()
    off = d.log_size()
    d.signal(signal.SIGHUP)
    d.wait_log(r"warn.*listen.*restart", off)
    with h.SmtpClient("127.0.0.1", old_port) as c:
        c.expect(220)


@pytest.mark.parametrize("key,entries,bad_line", [
    ("deny_ips_file", ["# deny list", "192.0.2.1", "", "not-an-ip", "198.51.100.0/24"], 4),
    ("deny_senders_file", ["# senders", "*@spam.example", "bad<pattern>@x", "ok.example"], 3),
])
def test_list_file_errors_name_file_and_line(tmp_path, key, entries, bad_line):
    """filters/lists README: a bad entry in a list file fails with file:line."""
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "entries.txt").write_text("\n".join(entries) + "\n")
    text = GOOD.replace('deny_senders = ["*@spam.example"]', f'{key} = "lists/entries.txt"')
    rc, out = _check_config(tmp_path, text)
    assert rc == 1, out
    assert re.search(rf"entries\.txt:{bad_line}: ", out), f"expected entries.txt:{bad_line}: in\n{out}"
    (tmp_path / "lists" / "entries.txt").write_text("\n".join(e for i, e in enumerate(entries, 1) if i != bad_line) + "\n")
    rc, out = _check_config(tmp_path, text)
    assert rc == 0, out
