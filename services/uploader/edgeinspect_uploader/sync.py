"""Spool → object store, one journaled batch at a time, deleting nothing the store has not confirmed.

A batch's life (see journal.py): plan and journal it; upload every file (a batch resumed from the
journal first asks the store which objects it already holds, by size and sha256, and skips them);
write the batch's manifest parts; mark the captures uploaded and delete their folders; close the
journal. A failure anywhere leaves the journal open, and the next attempt (after exponential backoff
with jitter) resumes the same batch, so an outage of days only delays it.

Files of a batch go up ``concurrency`` at a time (one request each is latency-bound on a factory
uplink), all sharing one bandwidth budget. An object counts as confirmed when the store says so:
a small file's PutObject answers with the ETag, the store's own MD5 of the bytes it received, which
must equal ours (else, e.g. with SSE-KMS, a HEAD must show our sha256); a large file's multipart
upload is confirmed by a HEAD (size and the sha256 metadata).

"Resume" means per object: an object the store confirms is never sent again, and an interrupted
object is sent again whole. Captures are small (one frame, one mask), far below the multipart
threshold; a file above it goes up as an S3 multipart upload via boto3, and an interrupted one is
restarted, not continued part by part (the bucket should have an ``AbortIncompleteMultipartUpload``
lifecycle rule to clean the orphaned parts; see the README).
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor
from pathlib import Path

from edgeinspect.core.errors import StorageError
from edgeinspect.core.lifecycle import Backoff
from edgeinspect.core.observability import get_logger
from edgeinspect.core.storage import ObjectInfo, ObjectStore

from edgeinspect_uploader.events import UPLOAD_FAILED, UPLOAD_RECOVERED, EventSink
from edgeinspect_uploader.journal import Batch, BatchItem, FileRef, Journal, day_groups, plan_item
from edgeinspect_uploader.layout import manifest_part_key
from edgeinspect_uploader.manifest import part_bytes
from edgeinspect_uploader.metrics import UploaderMetrics
from edgeinspect_uploader.spool import Spool, SpoolEntry
from edgeinspect_uploader.throttle import ThrottledProgress, TokenBucket, UploadCancelled

log = get_logger(__name__)
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".json": "application/json"}
MANIFEST_CONTENT_TYPE = "application/x-ndjson"
PRUNE_EVERY_S = 600.0


class Syncer:
    """Uploads the spool's captures in journaled batches."""

    def __init__(
        self,
        spool: Spool,
        journal: Journal,
        store: ObjectStore,
        metrics: UploaderMetrics,
        events: EventSink,
        bucket: TokenBucket,
        *,
        uploader: str,
        stop: threading.Event,
        batch_max_captures: int = 50,
        batch_max_bytes: int = 64 << 20,
        concurrency: int = 4,
        single_put_max: int = 8 << 20,
    ) -> None:
        self.spool = spool
        self.journal = journal
        self.store = store
        self.metrics = metrics
        self.events = events
        self.bucket = bucket
        self.uploader = uploader
        self.stop = stop
        self.batch_max_captures = batch_max_captures
        self.batch_max_bytes = batch_max_bytes
        self.single_put_max = single_put_max
        """Files up to this size go up in one PutObject from memory; larger ones stream (multipart on S3)."""
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="uploader-put")

    def close(self) -> None:
        """Stop the upload threads (after ``run`` returned)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run(self, wake: threading.Event, backoff: Backoff) -> None:
        """Until stopped: upload whatever is spooled; on failure wait with backoff and resume."""
        failing = False
        last_prune = time.monotonic()
        while not self.stop.is_set():
            wake.clear()
            try:
                done = self.run_once()
            except UploadCancelled:
                break
            except (StorageError, OSError) as exc:
                failing = self._failed(exc, failing, backoff)
                continue
            if failing:
                failing = False
                log.info("upload_recovered")
                self.events.post(UPLOAD_RECOVERED)
            backoff.reset()
            if time.monotonic() - last_prune > PRUNE_EVERY_S:
                self.spool.prune_tombstones()
                last_prune = time.monotonic()
            if done == 0:
                wake.wait(1.0)

    def _failed(self, exc: Exception, failing: bool, backoff: Backoff) -> bool:
        delay = backoff.next_delay()
        self.metrics.failure("upload", str(exc))
        self.metrics.backlog(self.spool.stats())
        log.warning("upload_failed", error=str(exc), retry_in_s=round(delay, 2))
        if not failing:  # one event per outage, not one per retry
            self.events.post(UPLOAD_FAILED, level="warning", error=str(exc))
        self.stop.wait(delay)
        return True

    def run_once(self) -> int:
        """Finish the oldest open batch, or make and upload a new one; returns captures uploaded."""
        batch, resumed = self._next_batch()
        if batch is None:
            return 0
        sent = self._upload(batch, resumed)
        self._publish_manifest(batch)
        names = [item.name for item in batch.items]
        self.spool.finish(names)
        self.journal.close(batch.seq)
        self.metrics.uploaded(len(batch.items), sent)
        self.metrics.backlog(self.spool.stats())
        log.info("batch_uploaded", seq=batch.seq, captures=len(batch.items), bytes=sent, resumed=resumed)
        return len(batch.items)

    def _next_batch(self) -> tuple[Batch | None, bool]:
        pending = self.journal.open_batches()
        if pending:
            batch = pending[0]
            self.spool.claim([item.name for item in batch.items])
            return batch, True
        entries = self.spool.claim_batch(self.batch_max_captures, self.batch_max_bytes)
        if not entries:
            return None, False
        try:
            return self._journal_batch(entries), False
        except BaseException:
            # the journal could not be written (a full disk): the claims must go too, or no later
            # batch would ever take these captures and they would wait in the spool until a restart
            self.spool.release([entry.name for entry in entries])
            raise

    def _journal_batch(self, entries: list[SpoolEntry]) -> Batch:
        """The batch of ``entries`` (corrupt folders set aside), written to the journal."""
        seq = self.journal.next_seq()
        items: list[BatchItem] = []
        for entry in entries:
            try:
                items.append(plan_item(self.spool.path(entry.name), self.uploader, seq))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.spool.release([entry.name])
                kept = self.spool.rejects.keep_folder(self.spool.path(entry.name), f"unreadable: {exc}")
                log.error("spool_capture_corrupt", name=entry.name, kept_as=str(kept), error=str(exc))
        batch = Batch(seq=seq, uploader=self.uploader, items=items)
        self.journal.write(batch)
        return batch

    def _upload(self, batch: Batch, resumed: bool) -> int:
        """Send every file of the batch not already confirmed, ``concurrency`` at a time; bytes sent."""
        jobs: list[tuple[Path, FileRef]] = []
        for item in batch.items:
            folder = self.spool.path(item.name)
            if folder.exists():
                jobs += [(folder / ref.file, ref) for ref in item.files]
            else:
                self._check_gone(item)
        futures = [self._pool.submit(self._send, path, ref, resumed) for path, ref in jobs]
        sent = 0
        error: BaseException | None = None
        for future in futures:  # wait for all: no upload of this batch may outlive the attempt
            try:
                sent += future.result()
            except (StorageError, OSError) as exc:
                error = error or exc
                for other in futures:
                    other.cancel()
            except CancelledError:
                continue
        if error is not None:
            raise error
        return sent

    def _send(self, path: Path, ref: FileRef, resumed: bool) -> int:
        """Upload one file unless the store already has it; returns the bytes sent."""
        if self.stop.is_set():
            raise UploadCancelled("upload interrupted by shutdown", hint="it resumes on the next start")
        if resumed and _confirms(self.store.head(ref.key), ref):
            self.metrics.skipped(1)
            return 0
        content_type = _CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        if ref.size < self.single_put_max:
            data = path.read_bytes()
            self.bucket.consume(len(data))
            info = self.store.put_bytes(ref.key, data, content_type)
            # the PUT's ETag is the store's MD5 of what it received; otherwise (SSE-KMS...) ask it
            confirmed = info.size == ref.size and info.etag.strip('"') == ref.md5
            if not confirmed:
                confirmed = _confirms(self.store.head(ref.key), ref)
        else:
            progress = ThrottledProgress(self.bucket)
            info = self.store.put_file(ref.key, path, progress=progress, content_type=content_type)
            confirmed = _confirms(info, ref)
        if not confirmed:
            raise StorageError(
                f"{self.store.url_for(ref.key)} does not match the spooled file after upload "
                f"(size {info.size} vs {ref.size})",
                hint="the file will be uploaded again; if this repeats, check the store or proxy",
            )
        return ref.size

    def _check_gone(self, item: BatchItem) -> None:
        """A resumed batch's folder is gone: fine if it was finished; otherwise its objects must exist."""
        if self.spool.is_uploaded(item.name):
            return
        if all(_confirms(self.store.head(ref.key), ref) for ref in item.files):
            return
        raise StorageError(
            f"capture {item.name} of batch is neither spooled nor in the store",
            hint="its spool folder was removed by hand; move the batch journal in state/batches away",
        )

    def _publish_manifest(self, batch: Batch) -> None:
        """One immutable part per (line, day) in the batch, same key and bytes on every attempt."""
        for (line, day), records in sorted(day_groups(batch).items()):
            key = manifest_part_key(line, day, batch.uploader, batch.seq)
            data = part_bytes(records)
            self.bucket.consume(len(data))
            info = self.store.put_bytes(key, data, MANIFEST_CONTENT_TYPE)
            if info.size != len(data):
                raise StorageError(f"manifest part {key} was stored with {info.size} of {len(data)} bytes")
            self.metrics.manifest_part()


def _confirms(info: ObjectInfo | None, ref: FileRef) -> bool:
    """Whether the store's object is the spooled file: size, and sha256 (or a plain-MD5 ETag) match.

    Stores we wrote record the sha256; an object without it is judged by its ETag when that is a
    plain MD5 (single-part S3 upload), and by size alone otherwise (logged, since it is weaker).
    """
    if info is None or info.size != ref.size:
        return False
    if info.sha256 is not None:
        return info.sha256 == ref.sha256
    etag = info.etag.strip('"').lower()
    if _MD5.match(etag):
        return etag == ref.md5
    log.info("upload_verified_by_size_only", key=ref.key, etag=info.etag)
    return True
