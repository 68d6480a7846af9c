"""Open a fleet_report.html in headless Chromium, screenshot it, and check the charts rendered.

    report_screenshot.py REPORT.html OUT.png [--expect STATE=MIN_PIXELS ...]

The report's charts are inline SVG; each bar is filled with its state's colour (the palette is
read from the collection's own module_utils/_render.py, so it cannot drift). A chart that
did not render leaves no pixel of that colour, so counting exact-colour pixels in the
screenshot proves the bars were drawn. Chromium runs with no network at all (the report must
open from disk), in a throwaway profile. Exit 0 with a JSON line of pixel counts, else 1.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / ".build"))  # make collection-link: the collection by its own name
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._render import COLORS  # noqa: E402  (the palette the report was drawn with)

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
    # the report must not need the network: refuse every connection that is not the file
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
)


def screenshot(html: Path, png: Path, width: int, height: int, timeout: float) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("report_screenshot: chromium is not installed (make deps installs Debian's chromium)")
    with tempfile.TemporaryDirectory(prefix="report-shot-") as profile:
        argv = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                f"--screenshot={png}", html.resolve().as_uri()]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 or not png.is_file():
        raise SystemExit(f"report_screenshot: chromium exited {proc.returncode} without a screenshot:\n"
                         + proc.stderr[-2000:])


def count_colours(png: Path, wanted: dict) -> dict:
    from PIL import Image  # Pillow, from requirements.txt

    targets = {name: tuple(int(hexa[i:i + 2], 16) for i in (1, 3, 5)) for name, hexa in wanted.items()}
    counts = dict.fromkeys(targets, 0)
    with Image.open(png) as image:
        histogram = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    by_rgb = {rgb: n for n, rgb in histogram}
    for name, rgb in targets.items():
        counts[name] = by_rgb.get(rgb, 0)
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--expect", action="append", default=[], metavar="STATE=MIN_PIXELS",
                        help=f"state colour that must cover at least MIN_PIXELS ({', '.join(COLORS)})")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    if not args.html.is_file():
        raise SystemExit(f"report_screenshot: {args.html} does not exist")
    expected = {}
    for item in args.expect:
        state, _sep, minimum = item.partition("=")
        if state not in COLORS or not minimum.isdigit():
            raise SystemExit(f"report_screenshot: --expect {item!r}: expected STATE=MIN_PIXELS with STATE in {sorted(COLORS)}")
        expected[state] = int(minimum)
    args.png.parent.mkdir(parents=True, exist_ok=True)
    screenshot(args.html, args.png, args.width, args.height, args.timeout)
    counts = count_colours(args.png, {state: COLORS[state] for state in COLORS})
    short = {state: counts[state] for state in expected if counts[state] < expected[state]}
    print(json.dumps({"png": str(args.png), "pixels": counts, "missing": short}))
    if short:
        print("report_screenshot: charts not rendered as expected: "
              + ", ".join(f"{s} has {counts[s]} px, expected at least {expected[s]}" for s in short),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
