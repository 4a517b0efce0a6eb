#!/usr/bin/env python3
"""Open an `ebfleet report` page in headless Chromium and check what it shows.

    python3 tests/report/check.py PAGE.html --platform NAME... [--screenshot OUT.png]

Twice, each time with a fresh profile:
- `--dump-dom`: the page as the browser parsed it has no script element and
  loads nothing from elsewhere, `#platforms` has a row per named platform,
  and each named platform has an `svg.graph` with at least one `g.node`;
- `--screenshot`: the PNG (1400x1000) decodes and is not blank (more than a
  few colours), and shows the green of built and the red of failed modules
  when the page has such modules.

Standard library only; Debian's Chromium at /usr/bin/chromium (see
`ensure_chromium` in scripts/tools.sh). Exits non-zero, saying why, on any
failure.
"""

import argparse
import html.parser
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WINDOW = (1400, 1000)
TIMEOUT_S = 120

# The node fills of the renderer (crates/ebfleet-cli/src/report.rs).
BUILT_FILL = (0x2E, 0x85, 0x40)
FAILED_FILL = (0xD6, 0x2D, 0x20)
# A node is 16 px high and tens of pixels wide; a legend swatch is 10x10.
MIN_STATE_PIXELS = 400
MIN_COLOURS = 8


class CheckFailed(Exception):
    pass


def chromium(page, *args):
    """Run Chromium headless on `page` with `args` and a fresh profile; its stdout."""
    if not os.access(CHROMIUM, os.X_OK):
        raise CheckFailed(
            f"{CHROMIUM} not found: install Debian's chromium (ensure_chromium in scripts/tools.sh)"
        )
    profile = tempfile.mkdtemp(prefix="ebfleet-report-chromium-")
    try:
        cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()]
        try:
            done = subprocess.run(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                timeout=TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"chromium {' '.join(args)} did not finish in {TIMEOUT_S}s")
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace")[-2000:]
            raise CheckFailed(f"chromium {' '.join(args)} exited {done.returncode}:\n{err}")
        return done.stdout.decode("utf-8", errors="replace")
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# ---------------------------------------------------------------------------
# The DOM.


class Dom(html.parser.HTMLParser):
    """What the checks need of the serialized DOM."""

    VOID = {"meta", "link", "br", "img", "input", "hr", "col", "area", "base", "source", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []  # (tag, attrs) of the open elements
        self.platform_rows = []  # data-platform of each tr in table#platforms
        self.graph_nodes = {}  # data-platform of each svg.graph -> its g.node states
        self.scripts = 0
        self.external = []  # src/href values that leave the page's directory

    def _inside(self, tag, **want):
        for t, a in reversed(self.stack):
            if t == tag and all(
                (k == "class" and v in a.get("class", "").split()) or a.get(k) == v
                for k, v in want.items()
            ):
                return a
        return None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            v = a.get(key, "")
            if "://" in v or v.startswith("//") or v.lower().startswith("javascript:"):
                self.external.append(f"<{tag} {key}={v!r}>")
        if tag == "tr" and self._inside("table", id="platforms") is not None:
            if "data-platform" in a:
                self.platform_rows.append(a["data-platform"])
        if tag == "svg" and "graph" in a.get("class", "").split():
            self.graph_nodes.setdefault(a.get("data-platform", ""), [])
        if tag == "g" and "node" in a.get("class", "").split():
            svg = self._inside("svg", **{"class": "graph"})
            if svg is not None:
                self.graph_nodes.setdefault(svg.get("data-platform", ""), []).append(
                    a.get("data-state", "")
                )
        if tag not in self.VOID:
            self.stack.append((tag, a))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break


def check_dom(page, platforms):
    text = chromium(page, "--dump-dom")
    if "<html" not in text:
        raise CheckFailed("chromium --dump-dom printed no document")
    dom = Dom()
    dom.feed(text)
    dom.close()
    if dom.scripts:
        raise CheckFailed(f"the page has {dom.scripts} script element(s)")
    if dom.external:
        raise CheckFailed(f"the page loads from elsewhere: {', '.join(dom.external)}")
    print("ok: DOM has no script element and no external resource")
    if not dom.platform_rows:
        raise CheckFailed("no #platforms table with rows (tr[data-platform])")
    for p in platforms:
        rows = dom.platform_rows.count(p)
        if rows != 1:
            raise CheckFailed(f"#platforms has {rows} rows for {p!r}, want 1 (rows: {dom.platform_rows})")
        nodes = dom.graph_nodes.get(p)
        if nodes is None:
            raise CheckFailed(f"no svg.graph[data-platform={p!r}]")
        if not nodes:
            raise CheckFailed(f"svg.graph of {p!r} has no g.node")
        by_state = {s: nodes.count(s) for s in sorted(set(nodes))}
        print(f"ok: {p}: a row in #platforms; svg.graph with {len(nodes)} g.node {by_state}")
    return [s for states in dom.graph_nodes.values() for s in states]


# ---------------------------------------------------------------------------
# The screenshot.


def decode_png(data):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise CheckFailed("the screenshot is not a PNG")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        if zlib.crc32(kind + body) != crc:
            raise CheckFailed(f"PNG chunk {kind!r}: bad CRC")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise CheckFailed("PNG without IHDR or IDAT")
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace != 0:
        raise CheckFailed(f"PNG of depth {depth}, colour type {colour}, interlace {interlace}: not handled")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise CheckFailed("PNG data of the wrong size")
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 0:
                break
            elif f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
            else:
                raise CheckFailed(f"PNG filter {f} in row {y}")
        prev = line
        if channels >= 3:
            rows.append([tuple(line[x : x + 3]) for x in range(0, stride, channels)])
        else:
            rows.append([(v, v, v) for v in line[::channels]])
    return width, height, rows


def near(p, q, tolerance=24):
    return all(abs(a - b) <= tolerance for a, b in zip(p, q))


def check_screenshot(page, out, states):
    if out.exists():
        out.unlink()
    chromium(page, f"--screenshot={out}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    if not out.exists() or out.stat().st_size == 0:
        raise CheckFailed(f"chromium wrote no screenshot to {out}")
    width, height, rows = decode_png(out.read_bytes())
    print(f"ok: screenshot {out.name}: a {width}x{height} PNG that decodes")
    if (width, height) != WINDOW:
        raise CheckFailed(f"screenshot is {width}x{height}, want {WINDOW[0]}x{WINDOW[1]}")
    colours = {}
    for row in rows:
        for p in row:
            colours[p] = colours.get(p, 0) + 1
    if len(colours) <= MIN_COLOURS:
        raise CheckFailed(f"the screenshot looks blank: {len(colours)} distinct colours")
    green = sum(n for p, n in colours.items() if near(p, BUILT_FILL))
    red = sum(n for p, n in colours.items() if near(p, FAILED_FILL))
    print(f"ok: {len(colours)} distinct colours; {green} pixels of built green, {red} of failed red")
    if "built" in states and green < MIN_STATE_PIXELS:
        raise CheckFailed(f"the page has built modules but the screenshot shows {green} green pixels")
    if "failed" in states and red < MIN_STATE_PIXELS:
        raise CheckFailed(f"the page has failed modules but the screenshot shows {red} red pixels")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("page", type=pathlib.Path)
    ap.add_argument("--platform", nargs="+", required=True, metavar="NAME")
    ap.add_argument("--screenshot", type=pathlib.Path, metavar="OUT.png")
    a = ap.parse_args()
    page = a.page.resolve()
    if not page.is_file():
        print(f"FAIL: no page at {a.page}", file=sys.stderr)
        return 1
    try:
        states = check_dom(page, a.platform)
        if a.screenshot is not None:
            check_screenshot(page, a.screenshot.resolve(), set(states))
        else:
            with tempfile.TemporaryDirectory(prefix="ebfleet-report-shot-") as d:
                check_screenshot(page, pathlib.Path(d) / "page.png", set(states))
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print(f"ok: {a.page.name}: {len(a.platform)} platform(s) checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
