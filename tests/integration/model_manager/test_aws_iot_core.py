"""The device, unchanged, on a broker that behaves like AWS IoT Core towards it (docs/fleet.md).

What AWS IoT Core imposes on a device, reproduced with Mosquitto so it runs on loopback:

- TLS with an X.509 client certificate of the device's own (one per thing, signed by a CA the broker
  trusts), as AWS's mutual TLS on port 8883;
- the client id is the thing name and the certificate's identity (``use_identity_as_username`` +
  ``use_username_as_clientid``), as an IoT policy allowing ``iot:Connect`` only on
  ``client/${iot:Connection.Thing.ThingName}``;
- each device may only publish and subscribe under its own ``$aws/things/{thing}/jobs/...`` and state
  topics (an ACL ``pattern`` on ``%u``), as a policy scoped with ``${iot:Connection.Thing.ThingName}``;
- the jobs service is AWS IoT Jobs: here the strict reference responder (tests/helpers/jobs_cloud.py,
  AWS's rules) under the ``$aws`` prefix, with a certificate of its own.

The model manager runs with only settings changed (URL, certificate files, ``EI_JOBS_PREFIX=$aws``), and
the job document is the one our deploy path writes. A second certificate for the same thing (a
rotation) takes over the same persistent session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from edgeinspect.core.errors import MqttError
from edgeinspect.core.mqtt import MqttClient, TlsOptions

from tests.fixtures.certs import issue_client_cert, make_pki
from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.fixtures.servers import LOOPBACK, free_port
from tests.helpers.jobs_cloud import JobsCloud
from tests.integration.model_manager.harness import DeviceKit

AWS_PREFIX = "$aws"
STATE_ROOT = "edgeinspect"
JOBS_SERVICE = "aws-iot-jobs"


@dataclass
class AwsLikeBroker(MosquittoBroker):
    """Mosquitto with per-device identities and per-thing topic permissions (see the module docstring)."""

    EXTERNAL_SKIP: ClassVar[str] = "needs a local mosquitto"

    def _config(self) -> str:
        acl = self.workdir / "acl"
        acl.write_text(
            f"user {JOBS_SERVICE}\n"
            f"topic readwrite {AWS_PREFIX}/things/+/jobs/#\n"
            f"topic read {STATE_ROOT}/+/state\n"
            "\n"
            f"pattern readwrite {AWS_PREFIX}/things/%u/jobs/#\n"
            f"pattern readwrite {STATE_ROOT}/%u/#\n"
        )
        return (
            super()._config()
            + "use_identity_as_username true\nuse_username_as_clientid true\n"
            + f"acl_file {acl}\n"
        )


@pytest.fixture(scope="module")
def aws_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsLikeBroker]:
    workdir = tmp_path_factory.mktemp("aws-like-broker")
    port = free_port()
    broker = AwsLikeBroker(
        url=f"mqtts://{LOOPBACK}:{port}", port=port, workdir=workdir, pki=make_pki(workdir / "pki")
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _tls(broker: AwsLikeBroker, name: str, folder: Path) -> TlsOptions:
    assert broker.pki is not None
    cert, key = issue_client_cert(broker.pki, name, folder)
    return TlsOptions(broker.pki.ca_file, cert, key)


def _use_certificate(kit: DeviceKit, broker: AwsLikeBroker, tls: TlsOptions) -> None:
    """Only settings change: the broker URL, the certificate files, AWS's topic prefix."""
    assert tls.ca_file is not None and tls.cert_file is not None and tls.key_file is not None
    kit.env.update(
        {
            "EI_MQTT_URL": broker.url,
            "EI_MQTT_CA_FILE": str(tls.ca_file),
            "EI_MQTT_CERT_FILE": str(tls.cert_file),
            "EI_MQTT_KEY_FILE": str(tls.key_file),
            "EI_JOBS_PREFIX": AWS_PREFIX,
            "EI_STATE_TOPIC_ROOT": STATE_ROOT,
        }
    )
    kit.broker_url = broker.url


def test_a_device_runs_jobs_on_an_aws_iot_core_like_broker_and_survives_a_certificate_rotation(
    kit: DeviceKit, aws_broker: AwsLikeBroker, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    _use_certificate(kit, aws_broker, _tls(aws_broker, kit.thing, certs / "first"))
    with JobsCloud(aws_broker.url, AWS_PREFIX, JOBS_SERVICE, _tls(aws_broker, JOBS_SERVICE, certs)) as cloud:
        kit.cloud = cloud
        kit.start_manager()
        first = kit.deploy("job-aws-1", kit.publish(kit.package("cls", "1")))
        assert first.status == "SUCCEEDED", first.status_details
        assert kit.serving() == "cls:1"
        assert [u.status for u in first.updates][-1] == "SUCCEEDED"
        assert all(u.payload.get("clientToken") for u in first.updates)

        # Rotation: a new certificate for the same thing, the manager restarted with it; the old one
        # would then be deactivated in AWS IoT (here: simply no longer used).
        kit.manager.stop()
        _use_certificate(kit, aws_broker, _tls(aws_broker, kit.thing, certs / "second"))
        kit.start_manager()
        second = kit.deploy("job-aws-2", kit.publish(kit.package("cls", "2")))
        assert second.status == "SUCCEEDED", second.status_details
        assert kit.serving() == "cls:2"


def test_a_device_cannot_touch_another_things_jobs(aws_broker: AwsLikeBroker, tmp_path: Path) -> None:
    """Per-device credentials matter: press-a's certificate cannot claim press-b's job."""
    victim, intruder = f"press-b-{uuid.uuid4().hex[:6]}", f"press-a-{uuid.uuid4().hex[:6]}"
    cloud_tls = _tls(aws_broker, JOBS_SERVICE, tmp_path)
    with JobsCloud(aws_broker.url, AWS_PREFIX, JOBS_SERVICE, cloud_tls) as cloud:
        cloud.create_job("job-b", {"operation": "remove_model", "model": {"name": "cls"}}, [victim])
        client = MqttClient(aws_broker.url, intruder, tls=_tls(aws_broker, intruder, tmp_path))
        client.connect(timeout=10)
        try:
            with pytest.raises(MqttError):  # MQTT v5: the broker answers "not authorized"
                client.publish_json(f"{AWS_PREFIX}/things/{victim}/jobs/start-next", {"clientToken": "x"})
            client.publish_json(f"{AWS_PREFIX}/things/{intruder}/jobs/start-next", {"clientToken": "y"})
        finally:
            client.stop()
        assert cloud.execution(victim, "job-b").status == "QUEUED"
