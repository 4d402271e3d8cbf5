#!/usr/bin/env python3
"""Render check for the monthly advisory report (one self-contained HTML file, Japanese text,
inline SVG charts) in headless Chromium, driven over the Chrome DevTools Protocol (CDP).

    .venv/bin/python scripts/render_check.py REPORT.html --png target/report-screenshot.png \
        [--json target/report-render.json]

Needs Debian's `chromium` and `fonts-noto-cjk` and the pinned `websocket-client` in .venv, all
installed by scripts/dev-tools.sh; fails (exit 2) naming what to install if one is missing.

It opens the file (file:// URL) in a fresh headless Chromium (window 1100x1400, throw-away
profile), waits for the load event and document.fonts.ready, and checks:

1. Overflow. Every rendered `h1, h2, h3, h4, th, td, caption, figcaption, .kpi` element must have
   scrollWidth <= clientWidth + 1 (its content fits its box; not checked for display:inline
   elements, whose clientWidth is 0) and a bounding box inside the page width
   (0 <= left and right <= document.documentElement.clientWidth, 1 px tolerance); and the page
   must not scroll sideways: documentElement.scrollWidth <= window.innerWidth + 1.

2. Missing glyphs ("tofu"). Checked elements: the same selector as 1 (which includes the
   headings h1-h4) plus every SVG `<text>` of every chart. Within each, every element that has
   text of its own (a "text holder") is asked CSS.getPlatformFontsForNode, which returns the
   fonts Chromium actually shaped that element's text with: the holder's own text nodes plus
   the text nodes of its child elements (Chromium walks two layout levels), each font with a
   glyph count. The text of exactly that scope is read from the DOM (hidden children skipped).
   Ignored characters: whitespace, control/format characters (Cc, Cf, Z*), variation
   selectors. Two rules, both must hold for every holder:
     a. Coverage: every distinct character of the scope must be in the fontconfig charset of
        at least one font face Chromium reported for the holder (matched by PostScript name,
        else by family name). Chromium draws a character that no installed font has with the
        .notdef box of some font that does not contain it, so an uncovered character is a
        missing-glyph box on the page.
     b. CJK: the glyph counts of the reported faces that are CJK-capable (fontconfig says the
        face covers U+3042 あ, U+30A2 ア and U+6F22 漢: Noto Sans/Serif CJK from
        fonts-noto-cjk) must add up to at least the number of CJK characters in the scope
        (CJK symbols and punctuation, kana, CJK ideographs incl. extensions and compatibility
        ideographs, half-/full-width forms), leaving out those that one of the reported non-CJK
        faces has itself. So Japanese text is really drawn by a Japanese font, not by a fallback
        that lacks it. (Rule a catches nearly every such case first; a holder is reported once.)
   A web font (@font-face, isCustomFont) cannot be looked up in fontconfig: it is trusted for
   both rules and a note is printed naming it.

3. A full-page PNG screenshot (device metrics set to the page's full height, at most 16384 px,
   Page.captureScreenshot with captureBeyondViewport) to --png, and Page.printToPDF, which must
   succeed, written next to it as .pdf (proof the page prints). Both are written even when a
   check fails, for the CI artifacts. --json writes all findings (including the fonts used by
   each text holder).

Exit 0 with one summary line when all is well; 1 listing every problem; 2 when the check could
not run (missing tool or file, Chromium failed, or the 60 s time limit). Chromium is killed and
its temporary profile removed on every exit path.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_S = 60
WINDOW = (1100, 1400)
MAX_SHOT_HEIGHT = 16384
BOX_SELECTOR = "h1, h2, h3, h4, th, td, caption, figcaption, .kpi"
CHART_TEXT_SELECTOR = "svg text"
SKIP_TAGS = {"script", "style", "title", "desc", "template", "noscript", "metadata"}
CJK_RANGES = [
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x31F0, 0x31FF),  # katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFFEF),  # half-width and full-width forms
    (0x20000, 0x3FFFF),  # CJK extensions B..
]
CJK_PROBE = (0x3042, 0x30A2, 0x6F22)  # あ ア 漢

INSTALL_HINT = "run scripts/dev-tools.sh (as root it installs Debian's chromium and fonts-noto-cjk)"


class CheckError(Exception):
    """The check could not run (exit 2)."""


class Timeout(CheckError):
    pass


STEP = ["starting"]


def step(name: str) -> None:
    STEP[0] = name


def on_alarm(_signum, _frame):
    raise Timeout(f"timed out after {TIMEOUT_S} s (while {STEP[0]})")


def on_term(signum, _frame):
    raise SystemExit(128 + signum)


# ---- fontconfig ---------------------------------------------------------------------------------

class Fonts:
    """Charsets of the installed fonts, as fontconfig (which Chromium uses on Linux) sees them."""

    def __init__(self) -> None:
        if not shutil.which("fc-list"):
            raise CheckError("fc-list not found (Debian package fontconfig); " + INSTALL_HINT)
        out = subprocess.run(
            ["fc-list", "-f", "%{family}\t%{postscriptname}\t%{charset}\n"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
        by_ps: dict[str, list] = {}
        by_family: dict[str, list] = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) != 3:
                continue
            families, ps, charset = parts
            ranges = []
            for tok in charset.split():
                lo, _, hi = tok.partition("-")
                ranges.append((int(lo, 16), int(hi or lo, 16)))
            by_ps.setdefault(ps, []).extend(ranges)
            for fam in families.split(","):
                by_family.setdefault(fam.strip(), []).extend(ranges)
        self.by_ps = {k: self._merge(v) for k, v in by_ps.items()}
        self.by_family = {k: self._merge(v) for k, v in by_family.items()}

    @staticmethod
    def _merge(ranges):
        ranges.sort()
        merged = []
        for lo, hi in ranges:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return ([r[0] for r in merged], [r[1] for r in merged])

    def charset(self, font: dict):
        return self.by_ps.get(font.get("postScriptName") or "") or self.by_family.get(font.get("familyName") or "")

    @staticmethod
    def covers(charset, cp: int) -> bool:
        los, his = charset
        i = bisect.bisect_right(los, cp) - 1
        return i >= 0 and cp <= his[i]

    def cjk_capable(self, charset) -> bool:
        return all(self.covers(charset, cp) for cp in CJK_PROBE)

    def any_cjk_font(self) -> bool:
        return any(self.cjk_capable(cs) for cs in self.by_family.values())


def is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def needs_glyph(ch: str) -> bool:
    cp = ord(ch)
    if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp"):
        return False
    return not (0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF)


# ---- CDP over one websocket (flattened sessions) ------------------------------------------------

class CDP:
    def __init__(self, url: str, deadline: float) -> None:
        import websocket  # websocket-client, pinned in scripts/dev-tools.sh

        self._ws_mod = websocket
        self.deadline = deadline
        self.ws = websocket.create_connection(url, timeout=max(1.0, deadline - time.monotonic()),
                                              suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def _recv(self) -> dict:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout(f"timed out after {TIMEOUT_S} s (while {STEP[0]})")
        self.ws.settimeout(remaining)
        try:
            raw = self.ws.recv()
        except self._ws_mod.WebSocketTimeoutException:
            raise Timeout(f"timed out after {TIMEOUT_S} s (while {STEP[0]})") from None
        except self._ws_mod.WebSocketConnectionClosedException:
            raise CheckError(f"Chromium closed the DevTools connection (while {STEP[0]})") from None
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            m = self._recv()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise CheckError(f"CDP {method} failed: {m['error'].get('message')} {m['error'].get('data', '')}".strip())
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, method: str, session: str | None = None) -> dict:
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == method and (session is None or m.get("sessionId") == session):
                    return self.events.pop(i)
            m = self._recv()
            if "method" in m:
                self.events.append(m)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


# ---- Chromium -----------------------------------------------------------------------------------

class Chromium:
    def __init__(self, deadline: float) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="render-check-"))
        self.profile = self.tmp / "profile"
        self.profile.mkdir()
        self.log_path = self.tmp / "chromium.log"
        self.proc: subprocess.Popen | None = None
        self.deadline = deadline

    def start(self) -> str:
        """Starts Chromium; returns the browser's DevTools websocket URL."""
        args = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={self.profile}",
            # Port 0: Chromium binds a free port itself and writes it to DevToolsActivePort in the
            # profile, so there is no race with another process taking a port picked here.
            "--remote-debugging-port=0",
            f"--window-size={WINDOW[0]},{WINDOW[1]}", "about:blank",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        while True:
            if self.proc.poll() is not None:
                raise CheckError(f"Chromium exited with status {self.proc.returncode} before DevTools "
                                 f"came up:\n{self.log_tail()}")
            if port_file.exists():
                lines = port_file.read_text().split("\n")
                if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                    return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
            if time.monotonic() > self.deadline:
                raise Timeout(f"timed out after {TIMEOUT_S} s waiting for Chromium's DevTools port:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "  (no Chromium log)"
        return "\n".join("  | " + l for l in lines[-n:]) or "  (Chromium printed nothing)"

    @staticmethod
    def _live_in_group(pgid: int) -> bool:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False

    def stop(self) -> None:
        if self.proc is not None:
            # Chromium runs in its own process group (start_new_session): end that group only.
            pgid = self.proc.pid
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            for _ in range(30):  # until no live process is left in the group (zombies wait for init)
                if not self._live_in_group(pgid):
                    break
                time.sleep(0.1)
        for _ in range(5):
            shutil.rmtree(self.tmp, ignore_errors=True)
            if not self.tmp.exists():
                break
            time.sleep(0.2)


# ---- the checks ---------------------------------------------------------------------------------

OVERFLOW_JS = r"""
(() => {
  const de = document.documentElement;
  const pageW = de.clientWidth;
  const label = (el) => (el.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 40);
  const out = {
    innerWidth: window.innerWidth, clientWidth: pageW, scrollWidth: de.scrollWidth,
    checked: 0, offenders: [],
    headings: document.querySelectorAll('h1, h2, h3, h4').length,
    tables: document.querySelectorAll('table').length,
    charts: [...document.querySelectorAll('svg')].filter((s) => !s.parentElement.closest('svg')).length,
  };
  for (const el of document.querySelectorAll(%s)) {
    if (!el.checkVisibility()) continue;
    out.checked++;
    const r = el.getBoundingClientRect();
    const left = r.left + window.scrollX, right = r.right + window.scrollX;
    const reasons = [];
    const isSvg = el instanceof SVGElement;
    if (!isSvg && getComputedStyle(el).display !== 'inline' && el.scrollWidth > el.clientWidth + 1)
      reasons.push(`content is ${el.scrollWidth}px wide in a ${el.clientWidth}px box`);
    if (left < -1 || right > pageW + 1)
      reasons.push(`box spans x=${Math.round(left)}..${Math.round(right)}px, outside the page width ${pageW}px`);
    if (reasons.length)
      out.offenders.push({tag: [el.localName, ...el.classList].join('.'), text: label(el), reasons,
                          rect: {left, right, top: r.top + window.scrollY, width: r.width}});
  }
  return out;
})()
""" % json.dumps(BOX_SELECTOR)

# Called on a text holder: the text Chromium's getPlatformFontsForNode covers for it (its own text
# nodes and those of its rendered child elements), or null when the holder is not rendered.
SCOPE_TEXT_FN = r"""
function () {
  const skip = new Set(%s);
  if (!this.checkVisibility()) return null;
  const parts = [];
  for (const c of this.childNodes) {
    if (c.nodeType === Node.TEXT_NODE) parts.push(c.data);
    else if (c.nodeType === Node.ELEMENT_NODE && !skip.has(c.localName) && c.checkVisibility())
      for (const g of c.childNodes) if (g.nodeType === Node.TEXT_NODE) parts.push(g.data);
  }
  const chart = this.closest('svg') ? [...document.querySelectorAll('svg')]
      .filter((s) => !s.parentElement.closest('svg')).findIndex((s) => s.contains(this)) : -1;
  return {text: parts.join(''), chart,
          chartLabel: chart >= 0 ? ((this.closest('svg').getAttribute('aria-label')) || '') : ''};
}
""" % json.dumps(sorted(SKIP_TAGS))


def text_holders(doc_root: dict, target_ids: list[int]) -> list[tuple[int, int, str]]:
    """(holder nodeId, target nodeId, target tag.classes) for every element with text of its own inside
    the targets, each holder once (attributed to the first, outermost, target containing it)."""
    by_id: dict[int, dict] = {}
    stack = [doc_root]
    while stack:
        n = stack.pop()
        by_id[n["nodeId"]] = n
        stack.extend(n.get("children", []))
        if n.get("contentDocument"):
            stack.append(n["contentDocument"])
    seen: set[int] = set()
    holders = []
    for tid in target_ids:
        target = by_id.get(tid)
        if target is None:
            continue
        attrs = target.get("attributes", [])
        classes = dict(zip(attrs[::2], attrs[1::2])).get("class", "").split()
        label = ".".join([target.get("localName", "?")] + classes)
        stack = [target]
        while stack:
            n = stack.pop()
            if n.get("nodeType") != 1 or n.get("localName") in SKIP_TAGS:
                continue
            kids = n.get("children", [])
            has_text = any(k.get("nodeType") == 3 and (k.get("nodeValue") or "").strip() for k in kids)
            if has_text and n["nodeId"] not in seen:
                seen.add(n["nodeId"])
                holders.append((n["nodeId"], tid, label))
            stack.extend(reversed(kids))
    return holders


def glyph_problems(cdp: CDP, sid: str, fonts: Fonts, findings: dict) -> list[str]:
    problems: list[str] = []
    notes: set[str] = set()
    root = cdp.call("DOM.getDocument", {"depth": -1}, sid)["root"]
    box_ids = cdp.call("DOM.querySelectorAll", {"nodeId": root["nodeId"], "selector": BOX_SELECTOR}, sid)["nodeIds"]
    text_ids = cdp.call("DOM.querySelectorAll", {"nodeId": root["nodeId"], "selector": CHART_TEXT_SELECTOR}, sid)["nodeIds"]
    holders = text_holders(root, box_ids + text_ids)
    findings["text_holders"] = []
    for holder_id, _target_id, target_label in holders:
        obj = cdp.call("DOM.resolveNode", {"nodeId": holder_id}, sid)["object"]["objectId"]
        info = cdp.call("Runtime.callFunctionOn", {"objectId": obj, "functionDeclaration": SCOPE_TEXT_FN,
                                                  "returnByValue": True}, sid)["result"].get("value")
        cdp.call("Runtime.releaseObject", {"objectId": obj}, sid)
        if not info:
            continue  # not rendered
        text = info["text"]
        chars = [c for c in text if needs_glyph(c)]
        if not chars:
            continue
        used = cdp.call("CSS.getPlatformFontsForNode", {"nodeId": holder_id}, sid)["fonts"]
        where = (f"chart {info['chart'] + 1}" + (f" ({info['chartLabel'][:30]})" if info["chartLabel"] else "")
                 + " <text>") if info["chart"] >= 0 else f"<{target_label}>"
        shown = " ".join(text.split())[:40]
        rec = {"where": where, "text": " ".join(text.split()), "fonts": used, "missing": [], "cjk_chars": 0,
               "cjk_glyphs": 0}
        findings["text_holders"].append(rec)
        if not used:
            problems.append(f"missing glyphs: {where} \"{shown}\": Chromium reports no font for its text")
            continue
        custom = [f for f in used if f.get("isCustomFont")]
        for f in custom:
            notes.add(f"note: web font \"{f.get('familyName')}\" is not in fontconfig; its glyph coverage is trusted, not checked")
        system = []
        for f in used:
            if f.get("isCustomFont"):
                continue
            cs = fonts.charset(f)
            if cs is None:
                problems.append(f"missing glyphs: {where} \"{shown}\": Chromium used font "
                                f"\"{f.get('familyName')}\" ({f.get('postScriptName')}), which fontconfig does "
                                "not list, so its coverage cannot be checked")
                continue
            system.append((f, cs))
        if not custom:
            missing = sorted({c for c in chars if not any(fonts.covers(cs, ord(c)) for _f, cs in system)})
            if missing:
                rec["missing"] = [f"U+{ord(c):04X}" for c in missing]
                names = ", ".join(sorted({f.get("familyName", "?") for f, _ in system}))
                listed = ", ".join(f"U+{ord(c):04X} {c} ({unicodedata.name(c, 'unnamed')})" for c in missing[:6])
                more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
                elsewhere = sorted({fam for c in missing for fam, cs in fonts.by_family.items()
                                    if fonts.covers(cs, ord(c))})
                hint = (f"; installed fonts that have them: {', '.join(elsewhere[:4])}" if elsewhere
                        else "; no installed font has them")
                if any(is_cjk(ord(c)) for c in missing):
                    hint += " (Japanese text needs fonts-noto-cjk)"
                problems.append(f"missing glyphs: {where} \"{shown}\": drawn as missing-glyph boxes: {listed}{more}"
                                f" (not in the fonts Chromium used: {names}{hint})")
        # CJK characters that a non-CJK face Chromium used could have drawn legitimately (e.g. 〖〗 are
        # in DejaVu Math TeX Gyre) are not required to come from a CJK font.
        latin = [cs for f, cs in system if not fonts.cjk_capable(cs)]
        cjk_chars = sum(1 for c in chars if is_cjk(ord(c)) and not any(fonts.covers(cs, ord(c)) for cs in latin))
        cjk_glyphs = sum(f.get("glyphCount", 0) for f in used
                         if f.get("isCustomFont") or (fonts.charset(f) and fonts.cjk_capable(fonts.charset(f))))
        rec["cjk_chars"], rec["cjk_glyphs"] = cjk_chars, cjk_glyphs
        if cjk_glyphs < cjk_chars and not rec["missing"]:  # else rule a already reported this holder
            names = ", ".join(f"{f.get('familyName')} ({f.get('glyphCount')} glyphs)" for f in used)
            problems.append(f"missing glyphs: {where} \"{shown}\": {cjk_chars} CJK characters but only "
                            f"{cjk_glyphs} glyphs from a CJK font (fonts used: {names}); install fonts-noto-cjk")
    findings["notes"] = sorted(notes)
    return problems


def run(args) -> int:
    html = Path(args.html)
    if not html.is_file():
        raise CheckError(f"{html}: no such file")
    if not os.access(CHROMIUM, os.X_OK):
        raise CheckError(f"{CHROMIUM} not found: {INSTALL_HINT} (or: apt-get install chromium fonts-noto-cjk)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        raise CheckError(f"python module 'websocket' (websocket-client) missing in {sys.executable}: "
                         "run scripts/dev-tools.sh and use .venv/bin/python") from None
    step("reading fontconfig")
    fonts = Fonts()
    if not fonts.any_cjk_font():
        raise CheckError("no installed font covers Japanese (あ ア 漢): apt-get install fonts-noto-cjk "
                         "(scripts/dev-tools.sh does it)")

    png = Path(args.png)
    pdf = png.with_suffix(".pdf")
    png.parent.mkdir(parents=True, exist_ok=True)
    findings: dict = {"file": str(html), "screenshot": str(png), "pdf": str(pdf)}
    deadline = time.monotonic() + TIMEOUT_S
    chromium = Chromium(deadline)
    cdp = None
    try:
        step("starting Chromium")
        ws_url = chromium.start()
        cdp = CDP(ws_url, deadline)
        findings["chromium"] = cdp.call("Browser.getVersion").get("product")
        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "DOM", "CSS"):
            cdp.call(f"{domain}.enable", {}, sid)

        step(f"loading {html}")
        nav = cdp.call("Page.navigate", {"url": html.resolve().as_uri()}, sid)
        if nav.get("errorText"):
            raise CheckError(f"Chromium could not open {html}: {nav['errorText']}")
        cdp.wait_event("Page.loadEventFired", sid)
        cdp.call("Runtime.evaluate", {"expression": "document.fonts.ready.then(() => true)",
                                      "awaitPromise": True}, sid)

        step("checking overflow")
        ov = cdp.call("Runtime.evaluate", {"expression": OVERFLOW_JS, "returnByValue": True}, sid)
        if "exceptionDetails" in ov:
            raise CheckError(f"overflow script failed: {ov['exceptionDetails'].get('text')}")
        ov = ov["result"]["value"]
        findings["overflow"] = ov
        problems: list[str] = []
        if ov["scrollWidth"] > ov["innerWidth"] + 1:
            problems.append(f"overflow: the page scrolls sideways: it is {ov['scrollWidth']}px wide in a "
                            f"{ov['innerWidth']}px window")
        for o in ov["offenders"]:
            problems.append(f"overflow: <{o['tag']}> \"{o['text']}\": " + "; ".join(o["reasons"]))

        step("checking glyphs")
        problems += glyph_problems(cdp, sid, fonts, findings)

        step("taking the screenshot")
        height = cdp.call("Runtime.evaluate", {"expression": "Math.ceil(Math.max(document.documentElement.scrollHeight,"
                                               " document.body ? document.body.scrollHeight : 0))",
                                               "returnByValue": True}, sid)["result"]["value"]
        shot_h = max(1, min(int(height), MAX_SHOT_HEIGHT))
        cdp.call("Emulation.setDeviceMetricsOverride", {"width": ov["innerWidth"], "height": shot_h,
                                                        "deviceScaleFactor": 1, "mobile": False}, sid)
        shot = cdp.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, sid)
        png_bytes = base64.b64decode(shot["data"])
        png.write_bytes(png_bytes)
        cdp.call("Emulation.clearDeviceMetricsOverride", {}, sid)
        # width and height from the PNG's IHDR chunk (wider than the window when the page overflows)
        findings["screenshot_size"] = [int.from_bytes(png_bytes[16:20], "big"), int.from_bytes(png_bytes[20:24], "big")]
        if height > MAX_SHOT_HEIGHT:
            findings.setdefault("notes", []).append(f"note: page is {height}px tall; screenshot cut at {MAX_SHOT_HEIGHT}px")

        step("printing to PDF")
        data = base64.b64decode(cdp.call("Page.printToPDF", {"printBackground": True,
                                                             "preferCSSPageSize": True}, sid)["data"])
        if not data.startswith(b"%PDF-"):
            problems.append("print: Page.printToPDF returned something that is not a PDF")
        pdf.write_bytes(data)
        findings["pdf_bytes"] = len(data)
        try:
            cdp.call("Browser.close")
        except CheckError:
            pass
    finally:
        if cdp is not None:
            cdp.close()
        chromium.stop()

    findings["problems"] = problems
    findings["ok"] = not problems
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(findings, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for note in findings.get("notes", []):
        print(f"render check: {note}")
    n_glyph = len(findings.get("text_holders", []))
    if problems:
        for p in problems:
            print(f"render check: FAIL {p}")
        print(f"render check: {len(problems)} problem(s) in {html} ({ov['headings']} headings, {ov['tables']} tables, "
              f"{ov['charts']} charts, {n_glyph} text runs checked); screenshot {png}, PDF {pdf}")
        return 1
    print(f"render check: {ov['headings']} headings, {ov['tables']} tables, {ov['charts']} charts, no overflow, "
          f"no missing glyphs; screenshot {png}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description="Render the report in headless Chromium and check it "
                                             "(see the module docstring for the exact rules).")
    ap.add_argument("html", metavar="HTML_FILE")
    ap.add_argument("--png", required=True, help="full-page screenshot to write (a .pdf is written next to it)")
    ap.add_argument("--json", help="write the findings as JSON here")
    args = ap.parse_args()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(TIMEOUT_S + 15)  # backstop; the CDP waits have their own 60 s deadline
    try:
        return run(args)
    except CheckError as e:
        print(f"render check: ERROR: {e}", file=sys.stderr)
        return 2
    finally:
        signal.alarm(0)


if __name__ == "__main__":
    sys.exit(main())
