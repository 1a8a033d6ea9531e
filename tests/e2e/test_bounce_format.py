"""Bounces (gateway/queue/bounce.cpp) parsed by Python's email package, an
independent MIME parser: the unit test binary writes sample bounces
(BounceSamples.Write) and this checks their structure and RFC 3464 fields.
No daemon is involved."""
from __future__ import annotations

import email
import email.policy
import os
import subprocess

import pytest

import mxgate_harness as h


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    unit = h.build_dir() / "mxgate_unit_tests"
    if not unit.exists():
        pytest.skip(f"unit test binary not built ({unit})")
    out = tmp_path_factory.mktemp("bounces")
    p = subprocess.run([str(unit), "--gtest_filter=BounceSamples.Write"], capture_output=True, timeout=60,
                       env={**os.environ, "MXGATE_BOUNCE_SAMPLES": str(out)})
    assert p.returncode == 0, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    files = {f.name: f.read_bytes() for f in out.iterdir()}
    assert set(files) == {"headers.eml", "full.eml", "delay.eml", "utf8.eml"}, files.keys()
    return files


def parse(raw: bytes):
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF"
    assert b"\r" not in raw.replace(b"\r\n", b""), "bare CR"
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def parts_of(msg):
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg.is_multipart()
    return msg.get_payload()


def status_groups(part):
    """message/delivery-status payload: per-message fields, then one block per recipient."""
    groups = part.get_payload()
    assert isinstance(groups, list) and len(groups) >= 2, groups
    return groups[0], groups[1:]


def test_failure_with_delay_headers_only(samples):
    msg = parse(samples["headers.eml"])
    assert msg["From"] == '"Mail Delivery System" <MAILER-DAEMON@mx.example.test>'
    assert msg["To"] == "<sender@origin.example>"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert email.utils.parsedate_to_datetime(msg["Date"]).year == 2023
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@mx.example.test>")
    text, report, original = parts_of(msg)
    assert text.get_content_type() == "text/plain"
    assert "<user@example.test>: 550 5.1.1" in text.get_payload()
    assert report.get_content_type() == "message/delivery-status"
    per_message, rcpts = status_groups(report)
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["Original-Envelope-Id"] == "env+1"
    assert email.utils.parsedate_to_datetime(per_message["Arrival-Date"]).timestamp() == 1_700_000_000
    assert [r["Final-Recipient"] for r in rcpts] == ["rfc822; user@example.test", "rfc822; late@example.test"]
    assert [r["Action"] for r in rcpts] == ["failed", "delayed"]
    assert [r["Status"] for r in rcpts] == ["5.1.1", "4.2.2"]
    assert rcpts[0]["Original-Recipient"] == "rfc822; orig@example.test"
    assert rcpts[0]["Diagnostic-Code"] == "smtp; 550 5.1.1 <user@example.test>: no such user"
    assert rcpts[1]["Will-Retry-Until"] is not None and rcpts[0]["Will-Retry-Until"] is None
    assert original.get_content_type() == "text/rfc822-headers"
    headers = original.get_payload()
    assert "Subject: hello" in headers and "The body line" not in headers


def test_full_returns_a_parseable_message(samples):
    msg = parse(samples["full.eml"])
    text, report, original = parts_of(msg)
    assert original.get_content_type() == "message/rfc822"
    (inner,) = original.get_payload()
    assert inner["Subject"] == "hello"
    assert inner["Message-ID"] == "<orig.1@origin.example>"
    assert inner.get_payload() == "The body line one.\r\nThe body line two.\r\n"
    _, rcpts = status_groups(report)
    assert [r["Action"] for r in rcpts] == ["failed"]


def test_delay_warning(samples):
    msg = parse(samples["delay.eml"])
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    text, report, original = parts_of(msg)
    _, rcpts = status_groups(report)
    assert [(r["Final-Recipient"], r["Action"]) for r in rcpts] == [("rfc822; late@example.test", "delayed")]
    assert original.get_content_type() == "text/rfc822-headers"


def test_smtputf8_uses_global_types(samples):
    # RFC 6532: the header section is UTF-8.
    msg = email.message_from_string(samples["utf8.eml"].decode("utf-8"), policy=email.policy.SMTPUTF8)
    assert msg["To"].addresses[0].addr_spec == "j\u00fcrgen@origin.example"
    assert msg.get_content_type() == "multipart/report"
    types = [p.get_content_type() for p in msg.iter_parts()]
    assert types == ["text/plain", "message/global-delivery-status", "message/global"]
    assert "Gr\u00fc\u00dfe" in samples["utf8.eml"].decode("utf-8")
