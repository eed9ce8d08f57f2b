"""The device on a broker that requires TLS and a client certificate, as AWS IoT Core does."""

from __future__ import annotations

from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.helpers.jobs_cloud import JobsCloud
from tests.integration.model_manager.harness import DeviceKit


def test_jobs_run_over_tls_with_a_client_certificate(
    kit: DeviceKit, mqtt_broker_tls: MosquittoBroker
) -> None:
    pki = mqtt_broker_tls.pki
    assert pki is not None
    kit.env.update(
        {
            "EI_MQTT_URL": mqtt_broker_tls.url,
            "EI_MQTT_CA_FILE": str(pki.ca_file),
            "EI_MQTT_CERT_FILE": str(pki.client_cert),
            "EI_MQTT_KEY_FILE": str(pki.client_key),
        }
    )
    kit.broker_url = mqtt_broker_tls.url
    with JobsCloud(mqtt_broker_tls.url, kit.root, tls=mqtt_broker_tls.client_tls()) as cloud:
        kit.cloud = cloud
        kit.start_manager()
        job = kit.deploy("job-tls", kit.publish(kit.package("cls", "1")))
        assert job.status == "SUCCEEDED", job.status_details
        assert kit.serving() == "cls:1"
    assert '"url":"mqtts://127.0.0.1:' in kit.manager.logs()
