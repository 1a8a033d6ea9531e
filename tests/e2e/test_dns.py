"""The shared resolver as configured in [dns]: a static zone answers, a bad
zone file fails with file:line, and `mxgatectl dns` shows what checks see."""
from __future__ import annotations

import subprocess

import mxgate_harness as h

ZONE = """\
# test zone
example.test          A    192.0.2.10
example.test          MX   10 mx.example.test
example.test          TXT  "v=spf1 ip4:192.0.2.0/24 -all"
"""


def test_static_zone_answers_through_mxgatectl(mxgate):
    d = mxgate(start=False)
    zone = d.root / "zone.txt"
    zone.parent.mkdir(parents=True, exist_ok=True)
    zone.write_text(ZONE)
    d.overrides = {**d.overrides, "dns": {"static_zones": str(zone)}}
    d.start()
    r = d.ctl("dns", "example.test", "MX")
    assert r.stdout.decode().splitlines() == ["example.test MX: ok (ttl 3600)", "  10 mx.example.test"], r.stdout
    r = d.ctl("dns", "example.test", "TXT")
    assert "v=spf1 ip4:192.0.2.0/24 -all" in r.stdout.decode()
    r = d.ctl("dns", "nowhere.test", check=False)
    assert r.returncode == 1 and r.stdout.decode().strip() == "nowhere.test A: nxdomain", r.stdout
    # The daemon itself runs with the zone loaded.
    with d.session() as c:
        c.cmd("NOOP").check(250)


def test_bad_zone_file_names_file_and_line(mxgate):
    d = mxgate(start=False)
    zone = d.root / "zone.txt"
    zone.parent.mkdir(parents=True, exist_ok=True)
    zone.write_text("ok.test A 192.0.2.1\nbad.test A not-an-address\n")
    d.overrides = {**d.overrides, "dns": {"static_zones": str(zone)}, "server": {"listen": [f"127.0.0.1:{h.free_port()}"]}}
    d.write_config()
    r = subprocess.run([str(h.mxgate_bin()), "--check-config", "-c", str(d.config_path)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and f"{zone}:2:" in r.stderr, r.stderr
    r = subprocess.run([str(h.mxgate_bin()), "-c", str(d.config_path)], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and f"{zone}:2:" in r.stderr, r.stderr


def test_bad_dns_server_is_a_config_error(mxgate, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[dns]\nservers = ["ns.example.test"]\n')
    r = subprocess.run([str(h.mxgate_bin()), "--check-config", "-c", str(cfg)], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and f"{cfg}:2: dns.servers" in r.stderr, r.stderr
