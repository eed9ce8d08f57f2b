#!/opt/moto/bin/python
"""MinIO's two commands as docker-compose.yml uses them, answered by moto's S3 server.

``server ...`` runs moto on 0.0.0.0:9000 (state in memory: a test stand-in, not storage);
``mc ready local`` succeeds once it answers; ``mc mb [--ignore-existing] local/<bucket>`` creates the
bucket with the credentials of ``MC_HOST_local`` (``http://user:password@host:port``).
"""

from __future__ import annotations

import os
import sys
import urllib.request
from urllib.parse import urlsplit


def _endpoint() -> tuple[str, str, str]:
    parts = urlsplit(os.environ.get("MC_HOST_local", "http://x:y@127.0.0.1:9000"))  # noqa: SIM112 (mc's name)
    endpoint = f"{parts.scheme}://{parts.hostname}:{parts.port or 9000}"
    return endpoint, parts.username or "", parts.password or ""


def main(argv: list[str]) -> int:
    args = argv[1:]
    if os.path.basename(argv[0]) != "mc":  # the image's entrypoint: `server ...` or `mc ...`
        if args[:1] == ["server"]:
            os.execv("/opt/moto/bin/moto_server", ["moto_server", "-H", "0.0.0.0", "-p", "9000"])
        args = args[1:] if args[:1] == ["mc"] else args
    endpoint, user, password = _endpoint()
    if args[:1] == ["ready"]:
        urllib.request.urlopen("http://127.0.0.1:9000/", timeout=3)
        return 0
    if args[:1] == ["mb"]:
        import time

        import boto3

        # compose may start this before the server answers (podman-compose has no health wait), and
        # moto's server takes a while to start on a loaded machine: wait up to 5 minutes, then say so
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/", timeout=3)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    print(f"s3-standin: {endpoint} did not answer within 300 s ({exc})", file=sys.stderr)
                    return 1
                time.sleep(1)

        bucket = args[-1].split("/", 1)[1]
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=user,
            aws_secret_access_key=password,
            region_name="us-east-1",
        )
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
        print(f"bucket {bucket} ready")
        return 0
    print(f"s3-standin: unsupported command {argv!r} (only server, mc ready, mc mb)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
