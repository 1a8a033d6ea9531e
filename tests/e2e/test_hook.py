"""The command hook ([filters.hook]) in the real daemon: a program run on each
message whose exit status accepts (0), rejects (1, 550 with its first line of
output), holds (2, quarantined in the spool) or defers (75); crashes follow
the filter's on_error."""
from __future__ import annotations

import os
import re

import mxgate_harness as h

# Decides on the Subject, and records what it was given for the accept case.
HOOK = r"""#!/bin/sh
file="$1"
if grep -q '^Subject: reject me' "$file"; then echo "Rejected by the local hook check"; exit 1; fi
if grep -q '^Subject: hold me' "$file"; then echo "held for review"; exit 2; fi
if grep -q '^Subject: later' "$file"; then exit 75; fi
if grep -q '^Subject: crash' "$file"; then kill -9 $$; fi
if grep -q '^Subject: hang' "$file"; then sleep 30; fi
{
  for a in "$@"; do echo "arg:$a"; done
  echo "env:$MXGATE_SENDER|$MXGATE_RECIPIENTS|$MXGATE_CLIENT_IP"
  echo "mode:$(stat -c %a "$file")"
} > "$(dirname "$0")/seen.txt"
cp "$file" "$(dirname "$0")/seen.eml"
exit 0
"""


def _hooked(mxgate, **settings) -> h.Daemon:
    d = mxgate(start=False)
    d.root.mkdir(parents=True, exist_ok=True)
    script = d.root / "hook.sh"
    script.write_text(HOOK)
    script.chmod(0o755)
    hook = {"command": [str(script), "%filepath", "%sender", "%recipients", "%client_ip", "%helo"],
            "temp_dir": str(d.root)}
    hook.update(settings)
    d.overrides = {**d.overrides, "filters.hook": hook}
    d.start()
    return d


def _send(d, subject, sender="sender@origin.example", rcpts=("user@example.test",)):
    msg = h.make_message(subject)
    with d.session() as c:
        r = c.send_message(sender, list(rcpts), msg)
        c.cmd("NOOP").check(250)
    return r, msg


def test_accept_passes_file_arguments_and_environment(mxgate):
    d = _hooked(mxgate)
    r, msg = _send(d, "plain", rcpts=("a@example.test", "b@example.test"))
    qid = h.queue_id_of(r.check(250))
    assert d.queue()[0].action == "accept"
    seen = (d.root / "seen.txt").read_text().splitlines()
    assert seen[0].startswith(f"arg:{d.root}/mxgate-hook."), seen
    assert seen[1:] == ["arg:sender@origin.example", "arg:a@example.test", "arg:b@example.test",
                        "arg:127.0.0.1", "arg:client.example",
                        "env:sender@origin.example|a@example.test b@example.test|127.0.0.1", "mode:600"], seen
    # The hook saw the message as received; the file is gone after the run.
    assert (d.root / "seen.eml").read_bytes() == msg
    assert not [p for p in os.listdir(d.root) if p.startswith("mxgate-hook.")]
    h.split_stored(d.raw(qid), msg)


def test_reject_with_the_hooks_text(mxgate):
    d = _hooked(mxgate)
    r, _ = _send(d, "reject me")
    r.check(550, "5.7.1")
    assert "Rejected by the local hook check" in r.text, r
    assert d.queue_ids() == []
    d.wait_log(r"HOOK_REJECT")


def test_hold_quarantines_the_message(mxgate):
    d = _hooked(mxgate)
    r, msg = _send(d, "hold me")
    qid = h.queue_id_of(r.check(250))
    (entry,) = d.queue()
    assert entry.id == qid and entry.action == "quarantine", entry
    added = h.split_stored(d.raw(qid), msg)
    assert re.search(rb"action=quarantine;.*\s+symbols=.*HOOK_HOLD", added, re.S), added
    # Held messages stay listed with --all as well.
    assert qid in d.ctl("queue", "list", "--all").stdout.decode()


def test_tempfail_status_defers(mxgate):
    d = _hooked(mxgate)
    r, _ = _send(d, "later")
    r.check(451, "4.3.0")
    assert d.queue_ids() == []


def test_crash_and_timeout_follow_on_error(mxgate):
    d = _hooked(mxgate, timeout="3s", command_timeout="300ms", kill_grace="200ms")
    for subject in ("crash", "hang"):
        r, _ = _send(d, subject)
        r.check(451, "4.3.0")
    d.wait_log(r"filter hook failed at stage data: hook killed by signal 9")
    d.wait_log(r"filter hook failed at stage data: hook timed out after 300ms")
    assert d.queue_ids() == []


def test_on_error_skip_accepts_with_the_failure_symbol(mxgate):
    d = _hooked(mxgate, on_error="skip")
    r, msg = _send(d, "crash")
    qid = h.queue_id_of(r.check(250))
    added = h.split_stored(d.raw(qid), msg)
    assert b"HOOK_ERROR" in added, added
