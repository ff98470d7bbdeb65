#!/usr/bin/env python3
"""Prints the public API of the plugwarden library, one item a line, sorted.

Reads the HTML that `cargo doc --no-deps -p plugwarden` wrote (stable Rust,
no network, a second or two): every item in `all.html`, and on each item's
page its fields, variants, inherent methods and associated items, and the
traits it implements (auto traits such as Send and Sync included; blanket
implementations left out). `#[doc(hidden)]` items are not in the docs and
so not in the list: they are not part of the API.

    cargo doc --no-deps -p plugwarden
    python3 tools/public-api.py target/doc > docs/public-api.txt

CI compares its output with docs/public-api.txt (.ci/run); docs/LIBRARY.md
says when and how to update the snapshot on purpose.
"""

import html
import re
import sys
from pathlib import Path
from urllib.parse import unquote

KINDS = {
    "struct": "struct",
    "enum": "enum",
    "fn": "fn",
    "trait": "trait",
    "constant": "const",
    "static": "static",
    "type": "type",
    "macro": "macro",
    "union": "union",
    "traitalias": "trait alias",
    "derive": "derive",
    "attr": "attr",
}

MEMBERS = {
    "structfield": "field",
    "variant": "variant",
    "method": "method",
    "tymethod": "required method",
    "associatedconstant": "const",
    "associatedtype": "type",
}


def plain(fragment: str) -> str:
    """HTML to one line of text."""
    text = html.unescape(re.sub(r"<[^>]+>", "", fragment))
    return re.sub(r"\s+", " ", text).strip()


# Auto traits whose names are unstable (rustdoc lists them as it learns
# them): left out, so that a toolchain update alone changes nothing.
UNSTABLE_AUTO = ("impl-Freeze-for-", "impl-UnsafeUnpin-for-")


def members(page: str) -> list[str]:
    """Fields, variants and inherent items (methods with their
    signatures), then implemented traits."""
    out = []
    cut = len(page)
    for marker in ('id="trait-implementations"', 'id="synthetic-implementations"',
                   'id="blanket-implementations"', 'id="implementors"',
                   'id="dyn-compatibility"', 'id="object-safety"'):
        i = page.find(marker)
        if i >= 0:
            cut = min(cut, i)
    own = page[:cut]
    for kind, name in re.findall(r'id="(structfield|variant|associatedconstant|associatedtype)\.([A-Za-z0-9_]+)"', own):
        out.append(f"{MEMBERS[kind]} {name}")
    for kind, name, header in re.findall(
            r'<section id="(method|tymethod)\.([A-Za-z0-9_]+)"[^>]*>.*?<h4 class="code-header">(.*?)</h4>',
            own, re.S):
        out.append(f"{MEMBERS[kind]} {plain(header)}")
    # Fields of struct-like variants: id="variant.Crashed.field.signal".
    for variant, field in re.findall(r'id="variant\.([A-Za-z0-9_]+)\.field\.([A-Za-z0-9_]+)"', own):
        out.append(f"variant {variant} field {field}")
    rest = page[cut:]
    blanket = rest.find('id="blanket-implementations"')
    traits = rest if blanket < 0 else rest[:blanket]
    for impl in re.findall(r'<section id="(impl-[^"]+)" class="impl"', traits):
        if not impl.startswith(UNSTABLE_AUTO):
            out.append(html.unescape(unquote(impl)))
    # An id repeats when rustdoc numbers duplicates (`method.new-1`): keep one.
    return sorted(set(out))


def main() -> int:
    doc = Path(sys.argv[1] if len(sys.argv) > 1 else "target/doc") / "plugwarden"
    all_html = doc / "all.html"
    if not all_html.exists():
        print(f"{all_html} is missing: run `cargo doc --no-deps -p plugwarden` first", file=sys.stderr)
        return 2
    text = all_html.read_text()
    lines = []
    for href, name in sorted(set(re.findall(r'<a href="([^"]+\.html)">([^<]+)</a>', text))):
        base = href.rsplit("/", 1)[-1]
        kind = KINDS.get(base.split(".", 1)[0])
        if kind is None:
            continue
        path = f"plugwarden::{html.unescape(name)}"
        page = doc / href
        decl = ""
        if kind in ("fn", "const", "static", "type") and page.exists():
            m = re.search(r'<pre class="rust item-decl"><code>(.*?)</code></pre>', page.read_text(), re.S)
            decl = f": {plain(m.group(1))}" if m else ""
        lines.append(f"{kind} {path}{decl}")
        if kind in ("struct", "enum", "trait", "union") and page.exists():
            for m in members(page.read_text()):
                lines.append(f"{kind} {path} {m}")
    index = (doc / "index.html").read_text()
    for name in re.findall(r'id="reexport\.([A-Za-z0-9_]+)"', index):
        lines.append(f"pub use plugwarden::{name}")
    print("\n".join(sorted(set(lines))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
