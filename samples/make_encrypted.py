#!/usr/bin/env python3
"""Writes the encrypted sample inputs of `plugwarden sanitize` with qpdf.

Run from anywhere: `python3 samples/make_encrypted.py` (needs qpdf:
`apt-get install qpdf`). The plain documents come from make_samples.py;
qpdf encrypts them with each standard security handler. Encryption salts
and IVs are random, so a rerun gives different bytes that mean the same.

| file | handler | passwords |
|---|---|---|
| encrypted-aes256-empty-password.pdf | AES-256, R6 (30 pages) | user "" |
| encrypted-aes256-crypt-filters.pdf | AES-256, R6, clear-text metadata, and on every page a stream with its own /Crypt filter (/Identity) (30 pages) | user "" |
| encrypted-aes128-empty-password.pdf | AES-128, R4 (3 pages) | user "" |
| encrypted-rc4-128-empty-password.pdf | RC4 128-bit, R3 (3 pages) | user "" |
| encrypted-rc4-40-empty-password.pdf | RC4 40-bit, R2 (3 pages) | user "" |
| encrypted-aes256-user-password.pdf | AES-256, R6 (3 pages) | user "plugwarden" |

The owner password is "plugwarden-owner" everywhere. A viewer opens all
but the last without asking; sanitize must too.
"""

import os
import re
import subprocess
import tempfile

import make_samples as plain

HERE = os.path.dirname(os.path.abspath(__file__))
OWNER = "plugwarden-owner"


def qpdf_encrypt(source, target, user, bits, *extra):
    weak = ["--allow-weak-crypto"] if bits < 128 or "--use-aes=n" in extra else []
    subprocess.run(
        ["qpdf", *weak, "--object-streams=disable", "--encrypt", user, OWNER, str(bits), *extra, "--", source, target],
        check=True,
    )


def with_identity_streams(path):
    """Appends an incremental update giving every page a second content
    stream that carries `/Filter /Crypt /DecodeParms << /Name /Identity >>`:
    stored in clear inside an encrypted file, as the crypt filter says. It
    draws a small grey bar at the top of the page."""
    data = open(path, "rb").read()
    pages = re.findall(rb"\n(\d+) 0 obj\n(<< /Contents (\d+) 0 R (.*?) /Type /Page >>)\nendobj", data)
    assert pages, "no page objects found in qpdf's output"
    trailer = re.findall(rb"trailer (<<.*?>>)\nstartxref\n(\d+)", data, re.S)[-1]
    size = int(re.search(rb"/Size (\d+)", trailer[0]).group(1))
    encrypt = re.search(rb"/Encrypt (\d+ 0 R)", trailer[0]).group(1)
    ids = re.search(rb"/ID (\[.*?\])", trailer[0]).group(1)
    update, offsets = bytearray(), {}
    for number, _, contents, rest in pages:
        bar = b"0.6 g 36 770 540 8 re f"
        stream_number = size
        size += 1
        offsets[stream_number] = len(data) + len(update)
        update += b"%d 0 obj\n<< /Filter /Crypt /DecodeParms << /Type /CryptFilterDecodeParms /Name /Identity >> /Length %d >>\nstream\n%s\nendstream\nendobj\n" % (
            stream_number,
            len(bar),
            bar,
        )
        offsets[int(number)] = len(data) + len(update)
        update += b"%s 0 obj\n<< /Contents [ %s 0 R %d 0 R ] %s /Type /Page >>\nendobj\n" % (number, contents, stream_number, rest)
    xref = len(data) + len(update)
    update += b"xref\n"
    for number in sorted(offsets):
        update += b"%d 1\n%010d 00000 n \n" % (number, offsets[number])
    update += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt %s /ID %s /Prev %s >>\nstartxref\n%d\n%%%%EOF\n" % (
        size,
        encrypt,
        ids,
        trailer[1],
        xref,
    )
    open(path, "wb").write(data + update)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        thirty = os.path.join(tmp, "thirty.pdf")
        three = os.path.join(tmp, "three.pdf")
        open(thirty, "wb").write(plain.pdf(plain.text_pdf(30)))
        open(three, "wb").write(plain.pdf(plain.text_pdf(3)))
        out = lambda name: os.path.join(HERE, name)
        qpdf_encrypt(thirty, out("encrypted-aes256-empty-password.pdf"), "", 256)
        qpdf_encrypt(thirty, out("encrypted-aes256-crypt-filters.pdf"), "", 256, "--cleartext-metadata")
        with_identity_streams(out("encrypted-aes256-crypt-filters.pdf"))
        qpdf_encrypt(three, out("encrypted-aes128-empty-password.pdf"), "", 128, "--use-aes=y")
        qpdf_encrypt(three, out("encrypted-rc4-128-empty-password.pdf"), "", 128, "--use-aes=n")
        qpdf_encrypt(three, out("encrypted-rc4-40-empty-password.pdf"), "", 40)
        qpdf_encrypt(three, out("encrypted-aes256-user-password.pdf"), "plugwarden", 256)
    for name in sorted(os.listdir(HERE)):
        if name.startswith("encrypted-"):
            password = "plugwarden" if "user-password" in name else ""
            subprocess.run(["qpdf", "--check", f"--password={password}", out(name)], check=True, stdout=subprocess.DEVNULL)
            print(f"{name:40} {os.path.getsize(out(name)):8} bytes")


if __name__ == "__main__":
    main()
