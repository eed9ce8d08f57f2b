#!/usr/bin/env python3
"""Take the README's screenshot from a running demo (``make demo`` in another terminal).

The README's picture must be what the demo shows, not a mock-up: this opens the demo's page in
Debian's headless Chromium (through Playwright, never a downloaded browser), waits until frames are
judged by both models and a defect is on screen, and saves the page at the panel PC's size.

    .venv/bin/python scripts/demo-screenshot.py [--url http://localhost:8080] [--out docs/ui.png]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import urllib.request
from pathlib import Path

VIEWPORT = {"width": 1366, "height": 768}
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _judged_defect(url: str) -> bool:
    """Whether the line's newest result is a defect judged by at least two models."""
    try:
        with urllib.request.urlopen(f"{url}/api/results/recent?limit=1", timeout=5) as resp:
            recent = json.loads(resp.read())
    except (OSError, ValueError):
        return False
    if not isinstance(recent, list) or not recent or not isinstance(recent[0], dict):
        return False
    newest = recent[0]
    predictions = newest.get("predictions") or []
    return newest.get("verdict") == "defect" and isinstance(predictions, list) and len(predictions) >= 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default="http://localhost:8080")
    parser.add_argument("--out", type=Path, default=Path("docs/ui.png"))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a judged defect")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        print("chromium is not installed: sudo apt-get install -y chromium", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    deadline = time.monotonic() + args.timeout
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(args.url)
        while time.monotonic() < deadline:
            if _judged_defect(args.url) and page.get_attribute("#verdict", "data-verdict") == "defect":
                page.wait_for_timeout(100)  # the mask is drawn over the frame just after the verdict
                page.screenshot(path=str(args.out))
                print(f"saved {args.out}")
                browser.close()
                return 0
            page.wait_for_timeout(50)
        browser.close()
    print(f"no defect judged by both models within {args.timeout:.0f}s at {args.url}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
