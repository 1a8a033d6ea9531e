"""Durability: every message acknowledged with 250 survives SIGKILL, exactly once.

Concurrent senders with unique messages; the daemon is SIGKILLed in the middle
of the load and restarted on the same directories, twice. Afterwards every
acknowledged message must be in the spool with exactly its bytes, no message may
appear twice, and the only unacknowledged messages allowed in the spool are ones
whose end of data was sent but not answered when the daemon died.
"""
from __future__ import annotations

import random
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

import mxgate_harness as h


@dataclass
class Tally:
    acked: dict[str, bytes] = field(default_factory=dict)  # queue id -> message
    in_flight: dict[str, bytes] = field(default_factory=dict)  # token -> message sent, no reply
    refused: int = 0  # got a non-250 reply to the end of data
    lock: threading.Lock = field(default_factory=threading.Lock)


def _sender(d: h.Daemon, tno: int, stop: threading.Event, deadline: float, tally: Tally, cap: int) -> None:
    rnd = random.Random(tno)
    seq = 0
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            c = h.SmtpClient(d.host, d.port, timeout=3)
        except OSError:
            return  # the daemon is gone
        try:
            c.expect(220)
            c.cmd(f"EHLO sender{tno}.example").check(250)
            while not stop.is_set() and time.monotonic() < deadline:
                with tally.lock:
                    if len(tally.acked) >= cap:
                        return
                token = f"T{tno}-{seq}-{uuid.uuid4().hex}"
                seq += 1
                size = rnd.choice([100, 1000, 5000, 30000])
                filler = "".join(rnd.choice("abcdefghij .") for _ in range(64))
                body = f"token {token}\r\n" + (filler + "\r\n") * (size // 66) + f"end {token}\r\n"
                msg = h.make_message(f"durable {token}", body=body)
                c.send(f"MAIL FROM:<s{tno}@origin.example>\r\nRCPT TO:<r{tno}@example.test>\r\nDATA\r\n")
                codes = [c.read_reply().code for _ in range(3)]
                assert codes == [250, 250, 354], codes
                with tally.lock:
                    tally.in_flight[token] = msg
                c.send(h.data_payload(msg))
                r = c.read_reply()
                with tally.lock:
                    del tally.in_flight[token]
                    if r.code == 250:
                        tally.acked[h.queue_id_of(r)] = msg
                    else:
                        tally.refused += 1
        except (OSError, h.SmtpClosed, AssertionError, TimeoutError):
            # The kill: whatever was not answered stays in in_flight.
            if not stop.is_set():
                time.sleep(0.01)
        finally:
            c.close()


def _load_and_kill(d: h.Daemon, tally: Tally, threads: int, load_seconds: float, max_acks: int) -> int:
    stop = threading.Event()
    base = len(tally.acked)
    cap = base + max_acks * 2  # senders stop on their own well after the kill point
    deadline = time.monotonic() + load_seconds + 3
    workers = [threading.Thread(target=_sender, args=(d, i, stop, deadline, tally, cap), daemon=True)
               for i in range(threads)]
    for w in workers:
        w.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < load_seconds:
        with tally.lock:
            if len(tally.acked) - base >= max_acks:
                break
        time.sleep(0.01)
    d.kill()  # SIGKILL in the middle of the load
    stop.set()
    for w in workers:
        w.join(6)
    assert not any(w.is_alive() for w in workers), "sender threads did not stop"
    return len(tally.acked) - base


def _token_of(raw: bytes) -> str | None:
    m = re.search(rb"^token (T\d+-\d+-[0-9a-f]+)\r$", raw, re.M)
    return m.group(1).decode() if m else None


def _verify(d: h.Daemon, tally: Tally, known_sizes: dict[str, int], unacked_ok: dict[str, bytes]) -> dict:
    entries = d.queue()
    ids = [e.id for e in entries]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    assert not dups, f"queue ids listed more than once: {dups[:10]}"
    listed = {e.id: e for e in entries}
    missing = sorted(set(tally.acked) - set(listed))
    assert not missing, f"{len(missing)} acknowledged message(s) lost after SIGKILL: {missing[:10]}"

    to_check = [q for q in tally.acked if q not in known_sizes]
    with ThreadPoolExecutor(4) as pool:
        raws = dict(zip(to_check, pool.map(d.raw, to_check)))
    for qid, raw in raws.items():
        h.split_stored(raw, tally.acked[qid])
        assert listed[qid].size == len(raw), f"{qid}: queue list size {listed[qid].size} != raw size {len(raw)}"
        known_sizes[qid] = len(raw)
    for qid, size in known_sizes.items():  # earlier rounds' messages are unchanged
        assert listed[qid].size == size, f"{qid} changed size after a restart: {size} -> {listed[qid].size}"

    # Messages nobody acknowledged: each must be a complete in-flight message, once.
    extra = [q for q in listed if q not in tally.acked]
    seen_tokens = set()
    for qid in extra:
        raw = d.raw(qid)
        token = _token_of(raw)
        assert token in unacked_ok, f"{qid} in the spool but never acknowledged nor in flight: {raw[:300]!r}"
        assert token not in seen_tokens, f"in-flight message {token} stored twice"
        seen_tokens.add(token)
        h.split_stored(raw, unacked_ok[token])
    acked_tokens = {_token_of(m) for m in tally.acked.values()}
    assert not (seen_tokens & acked_tokens), "an acknowledged message is also stored under another id"
    return {"listed": len(listed), "unacked_present": len(extra)}


def run_durability(mxgate, rounds: int, threads: int, load_seconds: float, max_acks: int) -> list[str]:
    # Small segments, so the load also rotates segments while it is killed.
    d = mxgate({"smtp": {"max_connections_per_ip": threads + 10}, "server": {"spool_segment_size": "1M"}})
    tally = Tally()
    known_sizes: dict[str, int] = {}
    unacked_ok: dict[str, bytes] = {}
    report = []
    for rnd in range(1, rounds + 1):
        acked = _load_and_kill(d, tally, threads, load_seconds, max_acks)
        assert acked > 0, "no message was acknowledged before the kill"
        in_flight = dict(tally.in_flight)
        tally.in_flight.clear()
        unacked_ok.update(in_flight)
        off = d.log_size()
        d.restart_after_kill()
        m = re.search(r"spool \S+: (\d+) message\(s\)", d.log_since(off))
        stats = _verify(d, tally, known_sizes, unacked_ok)
        if m:
            assert int(m.group(1)) == stats["listed"], f"daemon recovered {m.group(1)}, queue list shows {stats['listed']}"
        report.append(f"durability round {rnd}: {acked} acknowledged before SIGKILL, {len(in_flight)} in flight "
                      f"({stats['unacked_present']} of all unanswered so far present), {tally.refused} refused; "
                      f"{stats['listed']} in spool, all {len(tally.acked)} acknowledged intact")
    # And the restarted daemon still takes mail.
    with d.session() as c:
        c.send_message("after@origin.example", ["user@example.test"], h.make_message("after kills")).check(250)
    return report


def test_sigkill_durability(mxgate):
    report = run_durability(mxgate, rounds=2, threads=20, load_seconds=1.5, max_acks=450)
    h.REPORT_LINES.extend(report)
    print("\n".join(report))


@pytest.mark.soak
def test_sigkill_durability_soak(mxgate):
    report = run_durability(mxgate, rounds=6, threads=40, load_seconds=5, max_acks=5000)
    h.REPORT_LINES.extend(["soak " + r for r in report])
    print("\n".join(report))


def _segments(d: h.Daemon):
    return sorted((d.root / "spool" / "segments").glob("seg-*.dat"))


@pytest.mark.parametrize("tail", ["partial-record", "zeros", "header-only"])
def test_restart_after_torn_tail(mxgate, tail):
    """A power loss can leave a partly written, never acknowledged record at the
    end of the last segment (docs: "the first incomplete record in a segment marks
    the end of what was ever acknowledged there"). After a restart, messages
    acknowledged later must not end up behind that torn record, where readers
    would never see them."""
    import struct
    import zlib

    d = mxgate()
    sent = {}
    with d.session() as c:
        for i in range(3):
            m = h.make_message(f"before {i}")
            sent[h.queue_id_of(c.send_message("a@b.example", ["user@example.test"], m).check(250))] = m
    d.kill()
    seg = _segments(d)[-1]
    meta = b"id\tTORN000000000000\nfrom\tx@y.example\n"
    body = b"Subject: torn\r\n\r\nnever acknowledged\r\n" * 20
    record = struct.pack("<IIQ", 0x3152584D, len(meta), len(body)) + meta + body
    record += struct.pack("<II", zlib.crc32(record) & 0xFFFFFFFF, 0x3145584D)
    garbage = {"partial-record": record[: len(record) // 2], "zeros": b"\0" * 700,
               "header-only": record[:16]}[tail]
    with open(seg, "ab") as f:
        f.write(garbage)
    d.restart_after_kill()
    assert sorted(d.queue_ids()) == sorted(sent), "messages before the torn tail changed"
    with d.session() as c:
        for i in range(3):
            m = h.make_message(f"after {i}")
            sent[h.queue_id_of(c.send_message("a@b.example", ["user@example.test"], m).check(250))] = m
    assert sorted(d.queue_ids()) == sorted(sent), "messages acknowledged after the restart are not readable"
    d.kill()
    d.restart_after_kill()
    assert sorted(d.queue_ids()) == sorted(sent), "messages lost across a second restart"
    for qid, m in sent.items():
        h.split_stored(d.raw(qid), m)
    assert "TORN000000000000" not in d.queue_ids()
