"""The S3 server fixture itself: a private bucket per test and dummy credentials only for moto."""

from __future__ import annotations

import os

from tests.fixtures.s3_server import S3Server


def test_each_test_gets_its_own_empty_bucket(s3_server: S3Server, s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    assert endpoint == s3_server.endpoint_url
    client = s3_server.client()
    assert bucket in {b["Name"] for b in client.list_buckets()["Buckets"]}
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_boto3_default_chain_sees_only_test_credentials(s3_env: S3Server) -> None:
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    if not s3_env.external:
        assert os.environ["AWS_ACCESS_KEY_ID"] == "test"
        assert "AWS_PROFILE" not in os.environ
