"""The camera's Prometheus metrics, on a registry the service owns (one per service object, so tests
can run several cameras in one process and read each one's counters exactly)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ENCODE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class CameraMetrics:
    """Counters and gauges named ``edgeinspect_camera_*``; see the service README for each one."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.captured = Counter(
            "edgeinspect_camera_frames_captured",
            "Frames read from the source (each is then published or dropped)",
            registry=registry,
        )
        self.published = Counter(
            "edgeinspect_camera_frames_published", "Frames added to the frames stream", registry=registry
        )
        self.dropped = Counter(
            "edgeinspect_camera_frames_dropped",
            "Frames dropped, by reason (drop_oldest, drop_newest, redis_error, encode_error, retention)",
            ["reason"],
            registry=registry,
        )
        self.frame_errors = Counter(
            "edgeinspect_camera_frame_errors",
            "Frames the source could not read or decode (each one also a frame_error event)",
            registry=registry,
        )
        self.encode_seconds = Histogram(
            "edgeinspect_camera_encode_seconds",
            "Time to encode one frame (png/jpeg/raw)",
            buckets=ENCODE_BUCKETS,
            registry=registry,
        )
        self.source_fps = Gauge(
            "edgeinspect_camera_source_fps",
            "Frames per second read from the source, recently",
            registry=registry,
        )
        self.source_up = Gauge(
            "edgeinspect_camera_source_up",
            "1 while the source is open, 0 during an outage",
            registry=registry,
        )
        self.outages = Counter(
            "edgeinspect_camera_source_outages",
            "Times the source was lost (source_down events)",
            registry=registry,
        )
        self.backlog = Gauge(
            "edgeinspect_camera_backlog",
            "Unconsumed frames in the stream at the last publish",
            registry=registry,
        )

    def dropped_total(self, reason: str) -> float:
        """The exact count for one reason (tests and the final log line read it)."""
        value = self.registry.get_sample_value("edgeinspect_camera_frames_dropped_total", {"reason": reason})
        return value or 0.0

    def value(self, name: str) -> float:
        """A sample by its full name (``edgeinspect_camera_frames_captured_total``), 0 if absent."""
        return self.registry.get_sample_value(name) or 0.0
