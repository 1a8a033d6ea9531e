"""DKIM interoperability: mail signed by mxgate verifies with dkimpy, mail
signed by dkimpy verifies in mxgate (Authentication-Results), a tampered copy
fails. Keys come from `mxgatectl dkim keygen`; DNS is a static zone file."""
from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import pytest

import mxgate_harness as h

dkim = pytest.importorskip("dkim", reason="python3-dkim (dkimpy) is not installed")
nacl_signing = pytest.importorskip("nacl.signing", reason="python3-nacl is not installed")

OUR_DOMAIN = "sign.example.test"
PY_DOMAIN = "py.example.test"
TRUSTED = "127.0.0.1"
OUTSIDE = "127.0.0.2"  # another loopback address: an untrusted client


def keygen(d: h.Daemon, selector: str, kind: str) -> str:
    """Runs mxgatectl dkim keygen; returns the zone line for the static zone file."""
    out = d.root / "dkim"
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([str(h.mxgatectl_bin()), "dkim", "keygen", "--domain", OUR_DOMAIN, "--selector", selector,
                        "--type", kind, "--out", str(out)], capture_output=True, text=True, timeout=60, check=True)
    key = out / f"{OUR_DOMAIN}.{selector}.pem"
    assert key.stat().st_mode & 0o777 == 0o640, oct(key.stat().st_mode)
    m = re.fullmatch(r"(\S+)\. IN TXT (.+)\n", r.stdout)
    assert m, r.stdout
    return f"{m.group(1)} TXT {m.group(2)}"


def zone_records(zone: Path) -> dict[str, bytes]:
    """name -> TXT record (strings joined), as dkimpy's dnsfunc must answer."""
    out = {}
    for line in zone.read_text().splitlines():
        name, _, rest = line.split(None, 2)
        out[name.lower()] = "".join(re.findall(r'"([^"]*)"', rest)).encode()
    return out


def dnsfunc_for(zone: Path):
    records = zone_records(zone)

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name.rstrip(".").lower(), b"")
    return dnsfunc


def start(mxgate, body_canon: str = "relaxed", extra_zone: str = "") -> tuple[h.Daemon, Path]:
    d = mxgate(start=False)
    zone = d.root / "zone.txt"
    zone.parent.mkdir(parents=True, exist_ok=True)
    lines = [keygen(d, "rsa1", "rsa"), keygen(d, "ed1", "ed25519")]
    zone.write_text("\n".join(lines) + "\n" + extra_zone)
    keys = [{"domain": OUR_DOMAIN, "selector": s, "key_file": f"dkim/{OUR_DOMAIN}.{s}.pem"} for s in ("rsa1", "ed1")]
    d.overrides = {
        **d.overrides,
        "delivery": {"hold": False},
        "dns": {"static_zones": str(zone)},
        "relay": {"trusted_networks": [f"{TRUSTED}/32"]},
        "filters.dkim": {"enabled": True, "body_canonicalization": body_canon},
        "filters.dkim.keys": keys,
    }
    d.start()
    return d, zone


def deliver(d: h.Daemon, msg: bytes, source: str, sender: str) -> bytes:
    """Sends msg to user@example.test; returns the Maildir copy without the
    delivery agent's Return-Path and Delivered-To lines."""
    box = d.root / "mail" / "example.test" / "user" / "Maildir" / "new"
    before = set(box.glob("*")) if box.exists() else set()
    with d.session(source=source) as c:
        c.send_message(sender, ["user@example.test"], msg).check(250)
    new = h.wait_until(lambda: set(box.glob("*")) - before if box.exists() else None, 10, what="delivery")
    (f,) = new
    data = f.read_bytes()
    head, _, rest = data.partition(b"\r\nDelivered-To: ")
    assert head.startswith(b"Return-Path: "), data[:200]
    return rest.split(b"\r\n", 1)[1]


def header(stored: bytes, name: str) -> list[str]:
    """Unfolded values of a header field in the stored message."""
    head = stored.split(b"\r\n\r\n", 1)[0].decode()
    fields = re.split(r"\r\n(?![ \t])", head)
    return [re.sub(r"\r\n[ \t]+", " ", f.split(":", 1)[1]).strip() for f in fields
            if f.lower().startswith(name.lower() + ":")]


@pytest.mark.parametrize("body_canon", ["relaxed", "simple"])
def test_mail_signed_by_mxgate_verifies_with_dkimpy(mxgate, body_canon):
    d, zone = start(mxgate, body_canon)
    msg = h.make_message("signed here", sender=f"alice@{OUR_DOMAIN}", to="user@example.test",
                         headers=["Date: Sat, 21 Nov 2026 10:00:00 +0000", "List-Id: <team.sign.example.test>"],
                         body="Hello,\r\n  with  spaces and a long line " + "x" * 300 + "\r\n\r\n\r\n")
    stored = deliver(d, msg, TRUSTED, f"alice@{OUR_DOMAIN}")
    sigs = header(stored, "DKIM-Signature")
    assert len(sigs) == 2, stored[:1500]
    assert {re.search(r"\ba=([\w-]+)", s).group(1) for s in sigs} == {"rsa-sha256", "ed25519-sha256"}
    for s in sigs:
        assert f"c=relaxed/{body_canon}" in s and f"d={OUR_DOMAIN}" in s
        assert re.search(r"h=from:to:subject:message-id:date:list-id:from;", s, re.I), s  # From oversigned
    v = dkim.DKIM(stored)
    dnsfunc = dnsfunc_for(zone)
    for i in range(2):
        assert v.verify(idx=i, dnsfunc=dnsfunc), f"dkimpy rejects signature {i}: {sigs[i]}"
    # The same checks fail once the signed content changes.
    tampered = stored.replace(b"Subject: signed here", b"Subject: signed there")
    assert not dkim.DKIM(tampered).verify(idx=0, dnsfunc=dnsfunc)
    # Mail we sign is not also verified.
    assert all("dkim=" not in a for a in header(stored, "Authentication-Results"))


def dkimpy_keys(tmp: Path) -> tuple[bytes, str, bytes, str]:
    """An RSA key (PKCS#1 PEM) and an ed25519 key (base64 seed) with their records."""
    pem = tmp / "py-rsa.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(pem), "2048"], check=True, capture_output=True,
                   timeout=60)
    pub = subprocess.run(["openssl", "rsa", "-in", str(pem), "-pubout", "-outform", "DER"], check=True,
                         capture_output=True, timeout=60).stdout
    rsa_record = "v=DKIM1; k=rsa; p=" + base64.b64encode(pub).decode()
    sk = nacl_signing.SigningKey.generate()
    ed_record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(sk.verify_key)).decode()
    return pem.read_bytes(), rsa_record, base64.b64encode(bytes(sk)), ed_record


def zone_line(name: str, record: str) -> str:
    return f"{name} TXT " + " ".join(f'"{record[i:i + 255]}"' for i in range(0, len(record), 255)) + "\n"


def test_mail_signed_by_dkimpy_verifies_in_mxgate(mxgate, tmp_path):
    rsa_pem, rsa_record, ed_seed, ed_record = dkimpy_keys(tmp_path)
    extra = zone_line(f"pyrsa._domainkey.{PY_DOMAIN}", rsa_record) + zone_line(f"pyed._domainkey.{PY_DOMAIN}",
                                                                                 ed_record)
    d, _ = start(mxgate, extra_zone=extra)
    msg = h.make_message("from dkimpy", sender=f"bob@{PY_DOMAIN}", to="user@example.test",
                         body="Signed elsewhere.\r\n\r\n")
    headers = [b"from", b"to", b"subject", b"message-id"]
    sig_rsa = dkim.sign(msg, b"pyrsa", PY_DOMAIN.encode(), rsa_pem, include_headers=headers,
                        canonicalize=(b"simple", b"simple"))
    sig_ed = dkim.sign(msg, b"pyed", PY_DOMAIN.encode(), ed_seed, include_headers=headers,
                       signature_algorithm=b"ed25519-sha256", canonicalize=(b"relaxed", b"relaxed"))
    signed = sig_rsa + sig_ed + msg

    stored = deliver(d, signed, OUTSIDE, f"bob@{PY_DOMAIN}")
    (ar,) = header(stored, "Authentication-Results")
    assert ar.startswith("mx.example.test;"), ar
    results = re.findall(r"dkim=(\w+) header\.d=(\S+) header\.s=(\S+) header\.a=(\S+) header\.b=([^;\s]+)", ar)
    assert sorted(r[:4] for r in results) == [("pass", PY_DOMAIN, "pyed", "ed25519-sha256"),
                                              ("pass", PY_DOMAIN, "pyrsa", "rsa-sha256")], ar
    b_tags = {re.search(r"\bb=([^;]+)", s.replace(" ", "")).group(1)[:8] for s in header(stored, "DKIM-Signature")}
    assert {r[4] for r in results} == b_tags
    assert header(stored, "DKIM-Signature")  # untouched, still there for later verifiers

    tampered = signed.replace(b"Signed elsewhere.", b"Signed by a forger")
    stored = deliver(d, tampered, OUTSIDE, f"bob@{PY_DOMAIN}")
    (ar,) = header(stored, "Authentication-Results")
    assert re.findall(r"dkim=(\w+) \(body hash mismatch\)", ar) == ["fail", "fail"], ar

    unsigned = deliver(d, msg, OUTSIDE, f"bob@{PY_DOMAIN}")
    (ar,) = header(unsigned, "Authentication-Results")
    assert "dkim=none" in ar, ar


def test_unknown_key_and_config_errors(mxgate, tmp_path):
    d, _ = start(mxgate)
    rsa_pem, _, _, _ = dkimpy_keys(tmp_path)
    msg = h.make_message("no key", sender="carol@nokey.example.test", to="user@example.test")
    signed = dkim.sign(msg, b"gone", b"nokey.example.test", rsa_pem, include_headers=[b"from", b"subject"]) + msg
    stored = deliver(d, signed, OUTSIDE, "carol@nokey.example.test")
    (ar,) = header(stored, "Authentication-Results")
    assert re.search(r"dkim=permerror \([^)]*\) header\.d=nokey\.example\.test header\.s=gone", ar), ar

    bad = d.root / "bad.toml"
    bad.write_text(d.config_text().replace(f"dkim/{OUR_DOMAIN}.rsa1.pem", "dkim/missing.pem"))
    r = subprocess.run([str(h.mxgatectl_bin()), "-c", str(bad), "check-config"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1 and "filters.dkim.keys" in r.stderr and "cannot read" in r.stderr, r.stderr
