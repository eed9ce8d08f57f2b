"""Drift alerts: one JSON message per drifted group, on MQTT and/or a webhook.

By default an alert goes to the drifted line's alert topic (``{root}/{line}/alerts``, where the
worker's defect alerts go too, told apart by ``"type": "drift"``); ``--alert-topic`` sends every
alert to one topic instead. The webhook receives the same JSON, one POST per alert. A failed delivery
is reported to the caller (the command still exits with the drift status: cron must see the drift).
"""

from __future__ import annotations

from typing import Any

import httpx
from edgeinspect.core import topics
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.observability import get_logger

log = get_logger(__name__)


def drift_alerts(body: dict[str, Any], report_dir: str) -> list[dict[str, Any]]:
    """The alert messages of a report body (``metrics.json``): one per drifted group."""
    alerts = []
    for group in body["groups"]:
        if not group["drifted"]:
            continue
        features = [
            {k: f[k] for k in ("feature", "psi", "p_value", "baseline_value", "field_value")}
            for f in group["features"]
            if f["drifted"]
        ]
        alerts.append(
            {
                "type": "drift",
                "line": group["line"],
                "device": group["device"],
                "source": group["source"],
                "models": group["models"],
                "frames": group["frames"],
                "features": features,
                "thresholds": body["thresholds"],
                "report": report_dir,
                "generated_at": body["generated_at"],
            }
        )
    return alerts


def send_mqtt(
    alerts: list[dict[str, Any]], url: str, *, topic: str | None, root: str, timeout_s: float = 10.0
) -> None:
    """Publish every alert (QoS 1, waiting for the broker's acknowledgement); ``MqttError`` on failure."""
    client = MqttClient(url, "edgeinspect-monitor")
    client.connect(timeout=timeout_s)
    try:
        for alert in alerts:
            target = topic or topics.line_alerts(alert["line"], root=root)
            client.publish_json(target, alert, qos=1, timeout=timeout_s)
            log.info("drift_alert_published", topic=target, line=alert["line"], device=alert["device"])
    finally:
        client.stop()


def send_webhook(alerts: list[dict[str, Any]], url: str, timeout_s: float = 10.0) -> None:
    """POST every alert as JSON; a non-2xx answer or a transport error raises ``EdgeInspectError``."""
    with httpx.Client(timeout=timeout_s) as http:
        for alert in alerts:
            try:
                http.post(url, json=alert).raise_for_status()
            except httpx.HTTPError as exc:
                raise EdgeInspectError(
                    f"drift alert webhook {url} failed: {exc}", hint="check the URL and the receiver"
                ) from exc
