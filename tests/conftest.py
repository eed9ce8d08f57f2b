"""Root conftest: loads the real-server fixtures (redis, mosquitto, S3) for every test."""

pytest_plugins = ["tests.fixtures.plugin"]
