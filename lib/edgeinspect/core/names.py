"""Every Redis stream and consumer-group name in one place (MQTT topics live in ``topics``)."""

from __future__ import annotations

PREFIX = "ei"
INFERENCE_GROUP = "inference"
UPLOADER_GROUP = "uploader"
LINE_IO_GROUP = "line-io"


def frames_stream(line: str) -> str:
    """Frames from the camera of ``line``; read by the inference workers' group."""
    return f"{PREFIX}:frames:{line}"


def results_stream(line: str) -> str:
    """Verdicts for ``line``; read by the UI and alerting."""
    return f"{PREFIX}:results:{line}"


def capture_stream() -> str:
    """Frames chosen by the capture policy, for the uploader."""
    return f"{PREFIX}:capture"


def events_stream() -> str:
    """Model lifecycle, job status, alerts and errors from every service."""
    return f"{PREFIX}:events"


def lines_key() -> str:
    """A Redis set of every line id seen, so the UI can offer a line selector."""
    return f"{PREFIX}:lines"


def done_key(line: str, frame_id: str) -> str:
    """Marks a frame of ``line`` as judged (short-lived), so a second worker never adds a second result."""
    return f"{PREFIX}:done:{line}:{frame_id}"


def line_io_status_key(line: str) -> str:
    """JSON status of ``line``'s PLC I/O (connections, last trigger, last reject, missed rejects): the UI
    shows it, ``edgeinspect-line-io`` writes it every second."""
    return f"{PREFIX}:line-io:{line}:status"


def threshold_overrides_key() -> str:
    """JSON table of the device's threshold overrides set by jobs (``edgeinspect.core.thresholds``):
    the model manager writes it from its state.json, the inference workers read it."""
    return f"{PREFIX}:thresholds"


def line_thresholds_key(line: str) -> str:
    """JSON of the overrides the inference worker of ``line`` applies (jobs and its own setting), with
    when it last read them: the UI shows it beside the models."""
    return f"{PREFIX}:thresholds:{line}"
