"""Started as root, mxgate binds, hands its directories to server.user, and
drops privileges for good."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import mxgate_harness as h


def test_drops_to_configured_user(mxgate, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to test the privilege drop")
    try:
        user = pwd.getpwnam("mxgate")
    except KeyError:
        pytest.skip("system user mxgate missing (tools/install-deps.sh creates it)")
    # The directories must be reachable by the unprivileged user; pytest's
    # own temporary tree is private to root.
    base = Path(tempfile.mkdtemp(prefix="mxgate-priv-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        _check_drop(mxgate, base, user)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _check_drop(mxgate, base: Path, user) -> None:
    zone = base / "empty.zone"
    zone.write_text("# no records\n")
    d = mxgate({"server": {"user": "mxgate", "state_dir": str(base / "state"), "spool_dir": str(base / "spool")},
                "delivery": {"maildir_root": str(base / "mail")}, "dns": {"static_zones": str(zone)}},
               start=False)
    d.config_path = base / "mxgate.toml"  # read again after the drop (and on SIGHUP)
    d.start()
    status = open(f"/proc/{d.pid}/status").read()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    gids = next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1:]
    assert set(uids) == {str(user.pw_uid)}, f"real/effective/saved/fs uids: {uids}"
    assert set(gids) == {str(user.pw_gid)}, f"gids: {gids}"
    with d.session() as c:
        qid = h.queue_id_of(c.send_message("a@b.example", ["user@example.test"], h.make_message("after drop")).check(250))
    segs = list((base / "spool" / "segments").iterdir())
    assert segs and all(s.stat().st_uid == user.pw_uid for s in segs)
    assert qid in d.queue_ids()


def test_unknown_user_is_a_clear_error(mxgate):
    if os.geteuid() != 0:
        pytest.skip("the user is only looked up when started as root")
    d = mxgate({"server": {"user": "no-such-user-mxgate", "listen": [f"127.0.0.1:{h.free_port()}"]}}, start=False)
    d.write_config()
    r = subprocess.run([str(h.mxgate_bin()), "-c", str(d.config_path)], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2, r
    assert 'server.user: no such user "no-such-user-mxgate"' in r.stderr, r.stderr
