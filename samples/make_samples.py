#!/usr/bin/env python3
"""Writes the benign and hostile sample inputs of `plugwarden sanitize`.

Run from anywhere: `python3 samples/make_samples.py`. It uses the Python 3
standard library only and is deterministic (no clock, no randomness), so the
committed files can be regenerated and compared byte for byte. Every file is
built by hand below, so a reader can see exactly what each hostile sample
contains; samples/README.md lists them with the verdict sanitize must give.

The JPEG encoder here is a minimal baseline encoder (4:4:4, one quantisation
table, the standard Huffman tables of ITU T.81 Annex K) because the standard
library has none; the image plugin's tests check that it decodes.
"""

import math
import os
import struct
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, data):
    path = os.path.join(HERE, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    print(f"{name:32} {len(data):8} bytes")


# ---------------------------------------------------------------- PNG, BMP, GIF


def png_chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png(width, height, color_type, raw_scanlines):
    """raw_scanlines: already filtered rows (filter byte + samples)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(raw_scanlines, 9))
        + png_chunk(b"IEND", b"")
    )


def benign_pixel(x, y):
    """The pattern of benign.png; the plugin's round-trip test checks it."""
    return (x * 4 % 256, y * 5 % 256, (x + y) * 2 % 256)


def benign_png():
    w, h = 64, 48
    rows = bytearray()
    for y in range(h):
        rows.append(0)
        for x in range(w):
            rows.extend(benign_pixel(x, y))
    # A tEXt chunk, so the tests can check that sanitize drops ancillary data.
    text = png_chunk(b"tEXt", b"Comment\x00made by samples/make_samples.py")
    data = png(w, h, 2, bytes(rows))
    return data[:33] + text + data[33:]


def png_bomb(width, height):
    """Declares width x height RGB but carries only one row of zeros: a
    decoder that allocates from the header alone asks for width*height*3."""
    row = b"\x00" * (1 + width * 3)
    return png(width, height, 2, row)


def bmp(width, height, pixel):
    stride = (width * 3 + 3) & ~3
    body = bytearray()
    for y in reversed(range(height)):  # bottom-up
        row = bytearray()
        for x in range(width):
            r, g, b = pixel(x, y)
            row += bytes((b, g, r))
        body += row + b"\x00" * (stride - len(row))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(body), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(body), 2835, 2835, 0, 0)
    return header + info + bytes(body)


def gif_lzw(indices, min_code_size=2):
    """LZW for GIF without ever growing the code width: a clear code after
    every second literal keeps the decoder's table below 2**(min+1).
    Wasteful, but tiny and obviously correct."""
    clear, eoi = 1 << min_code_size, (1 << min_code_size) + 1
    width = min_code_size + 1
    codes = []
    for i, v in enumerate(indices):
        if i % 2 == 0:
            codes.append(clear)
        codes.append(v)
    codes.append(eoi)
    acc, nbits, out = 0, 0, bytearray()
    for c in codes:
        acc |= c << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    blocks = bytearray([min_code_size])
    for i in range(0, len(out), 255):
        part = out[i : i + 255]
        blocks += bytes([len(part)]) + part
    return bytes(blocks + b"\x00")


def gif_two_frames():
    """32x24, frame 1 red with a blue square, frame 2 all green: sanitize
    keeps the first frame only."""
    w, h = 32, 24
    palette = bytes((255, 0, 0, 0, 0, 255, 0, 255, 0, 255, 255, 255))
    frame1 = [1 if 8 <= x < 16 and 8 <= y < 16 else 0 for y in range(h) for x in range(w)]
    frame2 = [2] * (w * h)
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF1, 0, 0) + palette)
    for frame in (frame1, frame2):
        out += b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 0.1 s
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0)
        out += gif_lzw(frame)
    return bytes(out + b"\x3b")


# ------------------------------------------------------------------------ JPEG

ZIGZAG = []
for s in range(15):
    diagonal = [(r, s - r) for r in range(s + 1) if r < 8 and s - r < 8]
    if s % 2 == 0:
        diagonal.reverse()
    ZIGZAG += [r * 8 + c for r, c in diagonal]

# ITU T.81 table K.1, natural order.
LUMA_Q = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
# Tables K.3 and K.5 (luminance DC and AC).
DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
DC_VALS = list(range(12))
AC_BITS = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D]
AC_VALS = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
]  # fmt: skip
DCT = [[(math.sqrt(0.5) if u == 0 else 1.0) / 2 * math.cos((2 * x + 1) * u * math.pi / 16) for x in range(8)] for u in range(8)]


def huffman_codes(bits, vals):
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


class BitWriter:
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, value, length):
        for i in reversed(range(length)):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)  # byte stuffing
                self.acc, self.n = 0, 0

    def finish(self):
        while self.n:
            self.put(1, 1)
        return bytes(self.out)


def magnitude(v):
    size = abs(v).bit_length()
    return size, (v if v >= 0 else v + (1 << size) - 1)


def jpeg_segment(marker, payload):
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def jpeg(width, height, pixel, quality=90, app_segments=b""):
    """Baseline 4:4:4 YCbCr JPEG; width and height multiples of 8."""
    scale = 200 - 2 * quality
    q = [max(1, min(255, (v * scale + 50) // 100)) for v in LUMA_Q]
    dc, ac = huffman_codes(DC_BITS, DC_VALS), huffman_codes(AC_BITS, AC_VALS)
    bw, prev = BitWriter(), [0, 0, 0]
    for by in range(0, height, 8):
        for bx in range(0, width, 8):
            planes = [[[0.0] * 8 for _ in range(8)] for _ in range(3)]
            for y in range(8):
                for x in range(8):
                    r, g, b = pixel(bx + x, by + y)
                    planes[0][y][x] = 0.299 * r + 0.587 * g + 0.114 * b - 128
                    planes[1][y][x] = -0.168736 * r - 0.331264 * g + 0.5 * b
                    planes[2][y][x] = 0.5 * r - 0.418688 * g - 0.081312 * b
            for comp, f in enumerate(planes):
                rows = [[sum(DCT[u][x] * f[y][x] for x in range(8)) for u in range(8)] for y in range(8)]
                coef = [sum(DCT[v][y] * rows[y][u] for y in range(8)) for v in range(8) for u in range(8)]
                zz = [int(math.floor(coef[i] / q[i] + 0.5)) for i in ZIGZAG]
                size, bits = magnitude(zz[0] - prev[comp])
                prev[comp] = zz[0]
                bw.put(*dc[size])
                bw.put(bits, size)
                run = 0
                for c in zz[1:]:
                    if c == 0:
                        run += 1
                        continue
                    while run > 15:
                        bw.put(*ac[0xF0])
                        run -= 16
                    size, bits = magnitude(c)
                    bw.put(*ac[(run << 4) | size])
                    bw.put(bits, size)
                    run = 0
                if run:
                    bw.put(*ac[0x00])
    dht = bytes([0x00] + DC_BITS + DC_VALS) + bytes([0x10] + AC_BITS + AC_VALS)
    components = b"".join(bytes((i + 1, 0x11, 0)) for i in range(3))
    return (
        b"\xff\xd8"
        + jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + app_segments
        + jpeg_segment(0xDB, bytes([0]) + bytes(q[i] for i in ZIGZAG))
        + jpeg_segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + components)
        + jpeg_segment(0xC4, dht)
        + jpeg_segment(0xDA, bytes([3]) + b"".join(bytes((i + 1, 0x00)) for i in range(3)) + b"\x00\x3f\x00")
        + bw.finish()
        + b"\xff\xd9"
    )


def quadrant_pixel(x, y):
    """benign.jpg: flat red, green and blue quadrants of 32x24 and a
    grey-scale ramp in the fourth (so the scan data is not trivial)."""
    if x >= 32 and y >= 24:
        v = (x - 32) * 7 + (y - 24) * 3
        return (v, v, 255 - v)
    colors = ((220, 30, 30), (30, 200, 60), (40, 60, 210))
    return colors[(1 if x >= 32 else 0) + (2 if y >= 24 else 0)]


def truncated(jpeg_bytes):
    """Keeps the headers and half of the entropy-coded scan, no EOI."""
    scan = jpeg_bytes.index(b"\xff\xda")
    return jpeg_bytes[: scan + (len(jpeg_bytes) - scan) // 2]


def huge_exif_segment():
    """The largest APP1 a JPEG can carry (65533 bytes of payload): an Exif
    TIFF block with a camera make, a fake GPS-style note and a long
    description — the kind of metadata sanitize must drop."""
    make = b"HostileCam 3000\x00"
    filler = b"GPS 48.8584N 2.2945E; owner=alice@example.com; serial=PW-0001; "
    budget = 65533 - 6 - 8 - 2 - 3 * 12 - 4 - len(make)
    description = (filler * (budget // len(filler) + 1))[: budget - 1] + b"\x00"
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 3 * 12 + 4
    entries = [
        struct.pack("<HHII", 0x010E, 2, len(description), data_offset),
        struct.pack("<HHII", 0x010F, 2, len(make), data_offset + len(description)),
        # Orientation (SHORT, count 1): the value sits in the offset field.
        struct.pack("<HHIHH", 0x0112, 3, 1, 1, 0),
    ]
    tiff = b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", 3) + b"".join(entries) + b"\x00\x00\x00\x00"
    payload = b"Exif\x00\x00" + tiff + description + make
    assert len(payload) == 65533, len(payload)
    return jpeg_segment(0xE1, payload)


# ------------------------------------------------------------------------- PDF


def pdf_stream(data, extra=b""):
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def pdf(objects, root=1, xref_shift=0, header=b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", tail=b""):
    """objects[i] is the body of object i+1. xref_shift moves every offset in
    the xref table (a broken table); tail is appended after %%EOF."""
    out = bytearray(header)
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % (off + xref_shift)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\n" % (len(objects) + 1, root)
    out += b"startxref\n%d\n%%%%EOF\n" % (xref + xref_shift)
    return bytes(out) + tail


def pdf_text(s):
    return b"(" + s.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def page_content(number, total):
    """Text and vector art: a title, a paragraph, a filled circle, stroked
    lines and coloured boxes, so rendering exercises fonts and paths."""
    lines = [
        b"0.95 0.95 1 rg 36 36 540 720 re f",
        b"0 0 0 rg BT /F1 28 Tf 72 700 Td " + pdf_text(b"plugwarden sample, page %d of %d" % (number, total)) + b" Tj ET",
        b"BT /F2 12 Tf 72 660 Td 16 TL",
    ]
    for i in range(12):
        lines.append(pdf_text(b"Line %d: the quick brown fox jumps over the lazy dog. 0123456789" % (i + 1)) + b" '")
    lines.append(b"ET")
    r, g, b = ((number * 37) % 100 / 100, (number * 61) % 100 / 100, (number * 83) % 100 / 100)
    lines.append(b"%.2f %.2f %.2f rg" % (r, g, b))
    # A circle of radius 80 at (306, 250) from four Bezier arcs.
    k = 80 * 0.5523
    cx, cy, rad = 306, 250, 80
    lines.append(
        b"%d %d m %.1f %d %d %.1f %d %d c %d %.1f %.1f %d %d %d c %.1f %d %d %.1f %d %d c %d %.1f %.1f %d %d %d c f"
        % (cx + rad, cy, cx + rad, cy + k, cx + k, cy + rad, cx, cy + rad,
           cx - k, cy + rad, cx - rad, cy + k, cx - rad, cy,
           cx - rad, cy - k, cx - k, cy - rad, cx, cy - rad,
           cx + k, cy - rad, cx + rad, cy - k, cx + rad, cy)
    )  # fmt: skip
    lines.append(b"0.8 0.1 0.1 RG 4 w 72 120 m 540 120 l S 72 380 m 540 380 l S")
    lines.append(b"0 0.5 0 rg 72 400 100 60 re f 0 0 0.7 rg 440 400 100 60 re f")
    return b"\n".join(lines) + b"\n"


FONTS = b"<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >> /F2 << /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >> >> >>"


def text_pdf(pages):
    """Catalog 1, Pages 2, then for each page a Page and its content."""
    kids = b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages)]
    for i in range(pages):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources %s /Contents %d 0 R >>" % (FONTS, 4 + 2 * i))
        objects.append(pdf_stream(page_content(i + 1, pages)))
    return objects


def one_page_pdf(catalog_extra=b"", page_extra=b"", more=(), media_box=b"0 0 612 792", count=1):
    """A single page; `more` are objects 5, 6, ... for the hostile extras."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R %s>>" % catalog_extra,
        b"<< /Type /Pages /Kids [3 0 R] /Count %d >>" % count,
        b"<< /Type /Page /Parent 2 0 R /MediaBox [%s] /Resources %s /Contents 4 0 R %s>>" % (media_box, FONTS, page_extra),
        pdf_stream(page_content(1, 1)),
    ]
    return objects + list(more)


def pdf_openaction_js():
    js = pdf_text(b"app.alert('plugwarden sample: this script must not survive'); this.exportDataObject({cName: 'x', nLaunch: 2});")
    return pdf(one_page_pdf(
        catalog_extra=b"/OpenAction 5 0 R /Names << /JavaScript << /Names [(boot) 5 0 R] >> >> ",
        page_extra=b"/AA << /O << /S /JavaScript /JS %s >> >> " % js,
        more=[b"<< /Type /Action /S /JavaScript /JS %s >>" % js],
    ))


def pdf_embedded_file():
    payload = b"MZ\x90\x00 plugwarden sample: a fake executable that must not survive\n"
    return pdf(one_page_pdf(
        catalog_extra=b"/Names << /EmbeddedFiles << /Names [(invoice.exe) 5 0 R] >> >> ",
        page_extra=b"/Annots [7 0 R] ",
        more=[
            b"<< /Type /Filespec /F (invoice.exe) /UF (invoice.exe) /EF << /F 6 0 R >> >>",
            pdf_stream(payload, b"/Type /EmbeddedFile /Subtype /application#2Foctet-stream "),
            b"<< /Type /Annot /Subtype /FileAttachment /Rect [72 72 96 96] /FS 5 0 R /Contents (open me) >>",
        ],
    ))


def pdf_launch():
    return pdf(one_page_pdf(
        catalog_extra=b"/OpenAction << /S /Launch /F (cmd.exe) /Win << /F (cmd.exe) /P (/c calc.exe) >> >> /AcroForm << /Fields [7 0 R] >> ",
        page_extra=b"/Annots [5 0 R 6 0 R] ",
        more=[
            b"<< /Type /Annot /Subtype /Link /Rect [72 690 540 730] /Border [0 0 0] /A << /S /Launch /F (/bin/sh) >> >>",
            b"<< /Type /Annot /Subtype /Link /Rect [72 640 540 680] /A << /S /URI /URI (http://attacker.example/beacon) >> >>",
            b"<< /FT /Tx /T (secret) /V (prefilled) /Rect [72 72 300 96] /Subtype /Widget /P 3 0 R >>",
        ],
    ))


def pdf_broken_xref():
    # Every xref entry and startxref point 13 bytes too far; readers repair
    # by scanning for "N 0 obj".
    return pdf(text_pdf(2), xref_shift=13)


def pdf_million_pages():
    return pdf(one_page_pdf(count=1000000))


def pdf_repeated_page():
    """Pages 1 and 3 of text_pdf(3), the first named twice in the tree:
    viewers show it twice, so sanitize renders it twice (3 pages)."""
    objects = text_pdf(3)
    objects[1] = b"<< /Type /Pages /Kids [3 0 R 3 0 R 5 0 R] /Count 3 >>"
    return pdf(objects)


def pdf_missing_page():
    """Three kids, the second a reference to an object that does not exist:
    that page is lost, and sanitize must say so."""
    objects = text_pdf(3)
    objects[1] = b"<< /Type /Pages /Kids [3 0 R 9 0 R 7 0 R] /Count 3 >>"
    return pdf(objects)


def pdf_page_tree_cycle():
    """The root page tree names itself as a kid: the cycle is cut."""
    objects = one_page_pdf()
    objects[1] = b"<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2 >>"
    return pdf(objects)


def pdf_huge_page():
    return pdf(one_page_pdf(media_box=b"0 0 100000 100000"))


def pdf_zip_polyglot():
    """A valid PDF (it starts with %PDF-, its xref is right) that is also a
    valid ZIP: the local file entry hides inside a PDF stream and the
    central directory follows %%EOF, with absolute offsets."""
    name = b"hidden.txt"
    content = b"plugwarden sample: this ZIP member rides inside a PDF\n"
    crc = zlib.crc32(content) & 0xFFFFFFFF
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, len(content), len(content), len(name), 0) + name + content
    objects = one_page_pdf(more=[pdf_stream(local)])
    body = pdf(objects)
    local_offset = body.index(b"PK\x03\x04")
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, crc, len(content), len(content), len(name), 0, 0, 0, 0, 0, local_offset
    ) + name
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(body), 0)
    return body + central + eocd


def plain_zip():
    name = b"readme.txt"
    content = b"plugwarden sample: a ZIP archive is not a type sanitize handles\n"
    crc = zlib.crc32(content) & 0xFFFFFFFF
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, len(content), len(content), len(name), 0) + name + content
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, crc, len(content), len(content), len(name), 0, 0, 0, 0, 0, 0
    ) + name
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + eocd


def main():
    good_png = benign_png()
    good_jpg = jpeg(64, 48, quadrant_pixel)
    write("benign.png", good_png)
    write("benign.jpg", good_jpg)
    write("benign.gif", gif_two_frames())
    write("benign.bmp", bmp(40, 30, benign_pixel))
    write("benign.pdf", pdf(text_pdf(3)))
    write("hostile-bomb.png", png_bomb(100000, 100000))
    write("hostile-bomb-pixels.png", png_bomb(16000, 16000))
    write("hostile-truncated.jpg", truncated(good_jpg))
    write("hostile-huge-exif.jpg", jpeg(64, 48, quadrant_pixel, app_segments=huge_exif_segment()))
    write("hostile-trailing-data.png", good_png + b"<script>alert('after IEND')</script>\nPK\x03\x04 trailing bytes that must not survive\n")
    write("hostile-openaction-js.pdf", pdf_openaction_js())
    write("hostile-embedded-file.pdf", pdf_embedded_file())
    write("hostile-launch.pdf", pdf_launch())
    write("hostile-broken-xref.pdf", pdf_broken_xref())
    write("hostile-million-pages.pdf", pdf_million_pages())
    write("hostile-huge-page.pdf", pdf_huge_page())
    write("hostile-polyglot-pdf-zip.pdf", pdf_zip_polyglot())
    write("hostile-repeated-page.pdf", pdf_repeated_page())
    write("hostile-missing-page.pdf", pdf_missing_page())
    write("hostile-page-tree-cycle.pdf", pdf_page_tree_cycle())
    write("unsupported-archive.zip", plain_zip())
    write("unsupported-notes.txt", b"plugwarden sample: plain text is not a type sanitize handles.\n")
    write("bench/bench-20-pages.pdf", pdf(text_pdf(20)))

    for name in ("hostile-polyglot-pdf-zip.pdf", "unsupported-archive.zip"):
        with zipfile.ZipFile(os.path.join(HERE, name)) as z:
            assert z.testzip() is None, name


if __name__ == "__main__":
    main()
