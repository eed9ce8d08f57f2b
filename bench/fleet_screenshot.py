"""A screenshot of the fleet page mid-rollout, for docs/fleet.png.

The same stack as ``bench.fleet`` (PostgreSQL, Mosquitto, ``edgeinspect fleet serve``, simulated
devices with the model manager's jobs code), a few hundred devices, 5% of them failing their smoke
test, and a deployment in 1/10/50/100% waves; when the third wave is under way, headless Chromium
(Debian's ``chromium``, never a Playwright download) opens the page and saves it.

    .venv/bin/python -m bench.fleet_screenshot                 # -> docs/fleet.png
    .venv/bin/python -m bench.fleet_screenshot --devices 300 --out /tmp/fleet.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edgeinspect_cloud.fleet import Rollout

from bench.fleet import (
    MODEL,
    PREFIX,
    WAVE_PCT,
    Versions,
    execution_counts,
    make_devices,
    progress,
    wait_registered,
)
from bench.fleet_sim import Fleet
from bench.fleet_stack import Stack, temp_root
from bench.stack import LOOPBACK

DOCS = Path(__file__).resolve().parents[1] / "docs" / "fleet.png"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip


def chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("chromium is not installed: sudo apt-get install -y chromium")


def shoot(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(url)
        page.wait_for_selector("body[data-loaded='1']")
        page.screenshot(path=str(out))
        browser.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="screenshot the fleet page mid-rollout")
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--load-s", type=float, default=3.0, help="slow loads keep the rollout on screen")
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args(argv)
    root = temp_root()
    stack = Stack(root, progress, PREFIX)
    try:
        _pg, broker, service, store = stack.start()
        versions = Versions(root)
        first, _ = versions.approve_next()
        devices = make_devices(args.devices, args.load_s, first, line_size=20, lines_per_plant=5)
        for index, device in enumerate(devices):
            device.fail_smoke = index % 20 == 13
        fleet = Fleet(LOOPBACK, broker.port, PREFIX, PREFIX, devices)
        fleet.start()
        stack.closers.append(fleet.stop)
        wait_registered(store, len(devices), 120)
        version, document = versions.approve_next()
        job_id = f"deploy-{MODEL}-{version}"
        store.jobs.create_job(
            job_id, document, sorted({d.groups[0] for d in devices}),
            Rollout(abort_threshold_pct=10, wave_pct=WAVE_PCT), created_by="bench",
        )  # fmt: skip
        target = int(len(devices) * 0.25)
        deadline = time.time() + 300
        while time.time() < deadline and execution_counts(store, job_id).get("SUCCEEDED", 0) < target:
            time.sleep(0.5)
        progress(f"{execution_counts(store, job_id)}: taking the screenshot")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shoot(f"http://{LOOPBACK}:{service.http_port}/", args.out)
        print(args.out)
        return 0
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
