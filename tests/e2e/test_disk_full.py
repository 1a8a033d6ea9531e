"""Disk full: a spool write error is 451 4.3.0, never a 250, and nothing
acknowledged is lost. Runs on a real, tiny tmpfs (needs root and mount)."""
from __future__ import annotations

import subprocess

import pytest

import mxgate_harness as h


def _mount_tmpfs(path, size: str) -> None:
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                       capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {r.stderr.strip()}")


def _remount(path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, timeout=20)


def test_disk_full_is_a_tempfail_and_loses_nothing(mxgate, tmp_path):
    spool = tmp_path / "spoolfs"
    spool.mkdir()
    _mount_tmpfs(spool, "1m")
    d = None
    try:
        d = mxgate({"server": {"spool_dir": str(spool)}})
        body = ("y" * 998 + "\r\n") * 100  # ~100 KB
        acked: dict[str, bytes] = {}
        refused = 0
        with d.session() as c:
            for i in range(30):  # 30 x 100 KB is three times the file system
                msg = h.make_message(f"fill {i}", body=body)
                r = c.send_message("sender@origin.example", ["user@example.test"], msg)
                if r.code == 250:
                    assert refused == 0, f"250 after a disk-full refusal: {r}"
                    acked[h.queue_id_of(r)] = msg
                else:
                    assert (r.code, r.enhanced) == (451, "4.3.0"), r
                    refused += 1
                    if refused >= 3:
                        break
            c.cmd("NOOP").check(250)
        assert acked, "the file system filled before a single message fitted"
        assert refused >= 3, "the spool never reported the full disk"
        d.wait_log(r"spool: writing 1 message\(s\) to segment \d+ failed: No space left on device")
        # Every acknowledged message is intact; nothing else is in the spool.
        assert sorted(d.queue_ids()) == sorted(acked)
        for qid, msg in acked.items():
            h.split_stored(d.raw(qid), msg)

        # Space comes back: mail flows again, without a restart.
        _remount(spool, "8m")
        with d.session() as c:
            msg = h.make_message("after the disk was freed")
            r = c.send_message("sender@origin.example", ["user@example.test"], msg)
            assert r.code == 250, r
            acked[h.queue_id_of(r)] = msg
        assert sorted(d.queue_ids()) == sorted(acked)

        # And a restart recovers every acknowledged message.
        d.stop()
        d.start()
        assert sorted(d.queue_ids()) == sorted(acked)
        for qid, msg in acked.items():
            h.split_stored(d.raw(qid), msg)
    finally:
        if d is not None:
            d.stop()
        subprocess.run(["umount", "-l", str(spool)], capture_output=True, timeout=20)
