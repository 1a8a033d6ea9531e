"""Fixtures for the mxgate end-to-end suite.

Run:  MXGATE_BUILD=/abs/build /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e
Soak: add MXGATE_SOAK=1 and -m soak (tests marked @pytest.mark.soak are skipped otherwise).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mxgate_harness as h  # noqa: E402

# Daemons alive right now (function- and module-scoped), for log tails on failure.
ACTIVE: list[h.Daemon] = []


def pytest_configure(config):
    config.addinivalue_line("markers", "soak: slow load/soak test, run only by `make soak` (MXGATE_SOAK=1, -m soak)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MXGATE_SOAK") == "1":
        return
    skip = pytest.mark.skip(reason="soak test: run with `make soak` (MXGATE_SOAK=1 -m soak)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _binaries():
    if not h.mxgate_bin().exists():
        pytest.exit(f"mxgate binary not found at {h.mxgate_bin()}: build first or set MXGATE_BUILD", returncode=4)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """A self-signed certificate for mx.example.test, made once per run."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=mx.example.test",
         "-addext", "subjectAltName=DNS:mx.example.test,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


class DaemonFactory:
    def __init__(self, base: Path, cert):
        self.base = base
        self.cert = cert
        self.daemons: list[h.Daemon] = []

    def __call__(self, overrides: dict | None = None, extra: str = "", listen=None, start: bool = True,
                 name: str | None = None) -> h.Daemon:
        name = name or f"d{len(self.daemons)}"
        d = h.Daemon(self.base / name, self.cert[0], self.cert[1], overrides=overrides, extra=extra,
                     listen=listen, name=name)
        self.daemons.append(d)
        ACTIVE.append(d)
        if start:
            d.start()
        return d

    def close(self) -> None:
        errors = []
        for d in self.daemons:
            d.stop()
            if d in ACTIVE:
                ACTIVE.remove(d)
            problems = list(d.problems) + [f"sanitizer report in log: {m}" for m in d.sanitizer_reports()]
            if problems:
                errors.append(f"daemon {d.name}: " + "; ".join(problems) + "\n--- log tail ---\n" + d.log_tail(60))
        if errors:
            pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def mxgate(tmp_path, tls_cert):
    """Factory: mxgate(overrides={...}, extra="toml", listen=[...]) -> a started Daemon."""
    f = DaemonFactory(tmp_path, tls_cert)
    yield f
    f.close()


@pytest.fixture(scope="module")
def module_mxgate(tmp_path_factory, tls_cert):
    """The same factory, for daemons shared by a module's tests."""
    f = DaemonFactory(tmp_path_factory.mktemp("mod"), tls_cert)
    yield f
    f.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in ACTIVE:
            rep.sections.append((f"mxgate log tail ({d.name}, {d.log_path})", d.log_tail(40)))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = []
    if h.TABLE_RESULTS:
        counts = {k: 0 for k in ("match", "deviation", "n/a", "fail")}
        for status in h.TABLE_RESULTS.values():
            counts[status] = counts.get(status, 0) + 1
        total = h.TABLE_TOTAL[0] or len(h.TABLE_RESULTS)
        line = (f"command-reply table: {counts['match']} of {total} rows match, {counts['deviation']} deviations, "
                f"{counts['n/a']} not applicable")
        if counts["fail"]:
            line += f", {counts['fail']} FAILED"
        lines.append(line)
    if h.SMUGGLING_RESULTS:
        ok = sum(1 for v in h.SMUGGLING_RESULTS.values() if v == "ok")
        lines.append(f"smuggling.tsv: {ok} of {len(h.SMUGGLING_RESULTS)} (row, mode) cases pass")
    for extra in h.REPORT_LINES:
        lines.append(extra)
    if lines:
        terminalreporter.write_sep("-", "mxgate e2e")
        for line in lines:
            terminalreporter.write_line(line)
