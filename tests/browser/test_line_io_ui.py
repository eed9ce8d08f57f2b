"""The page's line I/O pieces in a real headless Chromium: the part id of the live frame, the part
search, and the Line I/O panel fed by the status key ``edgeinspect-line-io`` writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from edgeinspect.core import names
from edgeinspect.core.streams import Streams

from tests.browser.test_live_page import WAIT_MS, open_page, shown
from tests.integration.ui.support import LiveUi, push

pytestmark = pytest.mark.browser


def test_the_part_id_is_shown_found_and_the_line_io_status_is_listed(
    panel: Any, ui: LiveUi, streams: Streams, line_id: str
) -> None:
    status = {
        "state": "ContinuousExecution",
        "connections": {"redis": True, "output:modbus-client:plc:502": False},
        "counts": {"missed_rejects": 1},
        "last_reject": {"part_id": "4711", "ts_ns": 1_767_225_600_000_000_000, "error_ms": 0.3},
        "last_missed": {"part_id": "4712", "cause": "late_verdict"},
        "updated_ns": 1,
    }
    streams.client.set(names.line_io_status_key(line_id), json.dumps(status))
    open_page(panel, ui, line_id)
    push(streams, line_id, "f-a", "defect", part_id="4711")
    push(streams, line_id, "f-b", "ok", part_id="4712")
    shown(panel, "f-b", "ok")
    assert panel.inner_text("#part-id") == "4712"
    panel.wait_for_selector("#lineio:not([hidden])", timeout=WAIT_MS)
    assert panel.inner_text("#lineio-state") == "ContinuousExecution"
    assert "not connected" in panel.inner_text("#lineio-connections")
    assert panel.inner_text("#lineio-missed").startswith("1 (last: part 4712")
    panel.fill("#part-id-query", "4711")
    panel.press("#part-id-query", "Enter")
    panel.wait_for_selector("#part-results-body tr", timeout=WAIT_MS)
    rows = panel.inner_text("#part-results-body")
    assert "4711" in rows and "defect" in rows and "4712" not in rows
