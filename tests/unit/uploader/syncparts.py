"""A spool, journal and syncer over a ``file://`` store, for tests of the upload protocol."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from edgeinspect.core.storage import LocalStore
from edgeinspect_uploader.events import EventSink
from edgeinspect_uploader.journal import Journal
from edgeinspect_uploader.metrics import UploaderMetrics
from edgeinspect_uploader.spool import Spool
from edgeinspect_uploader.sync import Syncer
from edgeinspect_uploader.throttle import ManualClock, TokenBucket
from prometheus_client import CollectorRegistry


@dataclass
class Parts:
    spool: Spool
    journal: Journal
    store: LocalStore
    metrics: UploaderMetrics
    syncer: Syncer
    clock: ManualClock


def sync_parts(root: Path, *, quota: int = 10**9, rate: int = 0, batch: int = 50) -> Parts:
    """Open (or reopen, as after a crash) the spool under ``root/spool`` syncing to ``root/store``."""
    spool = Spool(root / "spool", quota)
    spool.open()
    journal = Journal(spool.state)
    journal.open()
    uploader = journal.uploader_id()
    store = LocalStore(root / "store")
    metrics = UploaderMetrics(CollectorRegistry())
    clock = ManualClock()
    bucket = TokenBucket(rate, 64 * 1024, clock)
    syncer = Syncer(
        spool, journal, store, metrics, EventSink(None), bucket,
        uploader=uploader, stop=threading.Event(), batch_max_captures=batch,
    )  # fmt: skip
    return Parts(spool, journal, store, metrics, syncer, clock)
