"""The command -> reply code table in ../shared/corpora/smtp/command-reply-table.tsv.

The table comes from aiosmtpd's test suite: rows grouped by test_function, with
steps in order. Each row is a test: a fresh session runs the group's preamble,
the earlier steps of its group, then the row's command, and compares reply codes.
Rows for AUTH are not applicable (they use aiosmtpd's own test mechanisms and its
auth-required mode; mxgate's AUTH is tested in test_submission.py); rows where mxgate
answers differently on purpose are in DEVIATIONS with the code mxgate gives and
why, and are asserted with that code.
"""
from __future__ import annotations

import csv
from collections import defaultdict

import pytest

import mxgate_harness as h

NOT_APPLICABLE_CLASSES = {
    "TestSMTPAuth": "AUTH is off on this daemon's listener; see test_submission.py",
    "TestAuthMechanisms": "aiosmtpd's test mechanisms (NULL, DONT, DENY*); see test_submission.py",
    "TestRequiredAuthentication": "aiosmtpd's auth-required mode differs (HELP/VRFY need AUTH); "
                                  "see test_submission.py",
}

# (test_class, test_function, step) -> (mxgate's code, reason)
DEVIATIONS = {
    ("TestSMTP", "test_help", "1"): (
        214, "RFC 5321 4.1.1.8 / 4.2.3: a HELP reply is 214; aiosmtpd answers 250"),
    ("TestSMTP", "test_vrfy_not_address", "1"): (
        501, "`VRFY @@` is a syntax error in the argument: 501 (RFC 5321 4.2.3); aiosmtpd says 502"),
    ("TestStrictASCII", "test_mail_param", "1"): (
        250, "the table's server is strict-ASCII; mxgate offers SMTPUTF8 (RFC 6531), so the parameter is accepted"),
}

# How each group's session starts. Default: EHLO. The table records only the
# commands sent with docmd(); steps the original tests made through the client
# library (HELO/EHLO, MAIL, RCPT) are restored here where a row needs them.
PREAMBLES = {
    "test_helo": [],  # tests HELO itself
    "test_helo_no_hostname": [],
    "test_ehlo_no_hostname": [],
    "test_close_then_continue": [],  # MAIL before HELO: 503
    "test_bpo27931fix_smtp": ["HELO client.example"],  # the SMTP (not ESMTP) variant
    "test_rcpt_smtp_errsyntax": ["HELO client.example"],
    "test_connection_reset_during_DATA": [  # the original test sent MAIL and RCPT through smtplib
        "EHLO client.example", "MAIL FROM:<anne@example.com>", "RCPT TO:<bart@example.com>"],
}
DEFAULT_PREAMBLE = ["EHLO client.example"]
# Rows needing a small max_message_size (the SIZE=10000 row).
SMALL_SIZE_GROUPS = {"test_mail_with_size_too_large"}


def load_table():
    path = h.CORPORA.resolve() / "smtp" / "command-reply-table.tsv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


ROWS = load_table()
GROUPS = defaultdict(list)
for _r in ROWS or []:
    GROUPS[(_r["test_class"], _r["test_function"])].append(_r)
if ROWS:
    h.TABLE_TOTAL[0] = len(ROWS)


def _row_id(r) -> str:
    return f"{r['test_class']}.{r['test_function']}.{r['step_in_function']}"


PARAMS = [pytest.param(r, id=_row_id(r)) for r in ROWS] if ROWS else [pytest.param(None, id="corpus-missing")]

DOMAINS = [{"name": "example.com", "recipients": "accept-all"}, {"name": "example.org", "recipients": "accept-all"}]


@pytest.fixture(scope="module")
def table_daemon(module_mxgate):
    return module_mxgate({"domains": DOMAINS}, name="table")


@pytest.fixture(scope="module")
def small_size_daemon(module_mxgate):
    return module_mxgate({"domains": DOMAINS, "smtp": {"max_message_size": "8K"}}, name="table-small")


def _key(r):
    return (r["test_class"], r["test_function"], r["step_in_function"])


@pytest.mark.parametrize("row", PARAMS)
def test_command_reply_row(row, request):
    if row is None:
        h.corpora_dir("smtp")
    rid = _row_id(row)
    if row["test_class"] in NOT_APPLICABLE_CLASSES:
        h.TABLE_RESULTS[rid] = "n/a"
        pytest.skip(NOT_APPLICABLE_CLASSES[row["test_class"]])
    h.TABLE_RESULTS[rid] = "fail"
    daemon_fixture = "small_size_daemon" if row["test_function"] in SMALL_SIZE_GROUPS else "table_daemon"
    d = request.getfixturevalue(daemon_fixture)
    group = GROUPS[(row["test_class"], row["test_function"])]
    earlier = [r for r in group if int(r["step_in_function"]) < int(row["step_in_function"])]
    expected = int(row["expected_code"])
    deviation = DEVIATIONS.get(_key(row))
    want = deviation[0] if deviation else expected
    with d.connect() as c:
        c.expect(220)
        for cmd in PREAMBLES.get(row["test_function"], DEFAULT_PREAMBLE):
            r = c.cmd(cmd)
            assert r.code in (250,), f"preamble {cmd!r} -> {r}"
        for e in earlier:
            r = c.cmd(e["command"])
            want_e = DEVIATIONS.get(_key(e), (int(e["expected_code"]),))[0]
            assert r.code == want_e, f"earlier step {_row_id(e)} {e['command']!r} -> {r}, expected {want_e}"
        r = c.cmd(row["command"])
        assert r.code == want, (f"{row['command']!r} -> {r}; table expects {expected} ({row['expected_status_name']})"
                                + (f"; mxgate deviates on purpose with {want}: {deviation[1]}" if deviation else ""))
    h.TABLE_RESULTS[rid] = "deviation" if deviation and want != expected else "match"


def test_table_shape():
    if ROWS is None:
        h.corpora_dir("smtp")
    assert len(ROWS) == 69, f"command-reply-table.tsv has {len(ROWS)} rows; the suite was written for 69"
    for key in DEVIATIONS:
        assert any(_key(r) == key for r in ROWS), f"deviation {key} names no row"
