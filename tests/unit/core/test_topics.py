"""Topic names and MQTT wildcard matching (pure logic, no broker)."""

from __future__ import annotations

import pytest
from edgeinspect.core import topics
from edgeinspect.core.errors import ConfigError
from edgeinspect.core.topics import JobsTopic, parse_jobs_topic, topic_matches, validate_filter


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b/c", "a/b/c", True),
        ("a/b/c", "a/b", False),
        ("a/b", "a/b/c", False),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/x/c", False),
        ("a/+", "a/", True),  # '+' matches an empty level
        ("+/+", "/x", True),
        ("+", "a/b", False),
        ("a/#", "a", True),  # '#' includes the parent level
        ("a/#", "a/b/c/d", True),
        ("a/#", "ab/c", False),
        ("#", "anything/at/all", True),
        ("a/b/#", "a/c", False),
        ("+/things/+/jobs/#", "ei/things/press-7/jobs/notify-next", True),
        ("#", "$aws/things/p/jobs/notify-next", False),  # wildcards never start-match '$' topics
        ("+/things/#", "$aws/things/p", False),
        ("$aws/things/+/jobs/#", "$aws/things/p/jobs/notify-next", True),
        ("$share/workers/ei/things/+/jobs/start-next", "ei/things/p/jobs/start-next", True),
        ("A/b", "a/b", False),  # case-sensitive
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b", "a/+b", "#/a", "a\x00b"])
def test_invalid_filters_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid MQTT topic filter"):
        validate_filter(bad)


@pytest.mark.parametrize("good", ["#", "+", "a/+/c/#", "$aws/things/+/jobs/notify-next", "$share/g/a/#", "/"])
def test_valid_filters_pass(good: str) -> None:
    assert validate_filter(good) == good


def test_jobs_topics_follow_the_aws_iot_jobs_api() -> None:
    assert topics.jobs_notify_next("$aws", "press-7") == "$aws/things/press-7/jobs/notify-next"
    assert topics.jobs_get_next("$aws", "press-7") == "$aws/things/press-7/jobs/$next/get"
    assert topics.jobs_start_next("ei", "press-7") == "ei/things/press-7/jobs/start-next"
    assert topics.jobs_update("ei", "press-7", "j-1") == "ei/things/press-7/jobs/j-1/update"
    assert topics.jobs_get_pending("ei", "press-7") == "ei/things/press-7/jobs/get"
    assert topics.accepted(topics.jobs_update("ei", "p", "j")) == "ei/things/p/jobs/j/update/accepted"
    assert topics.rejected(topics.jobs_start_next("ei", "p")) == "ei/things/p/jobs/start-next/rejected"
    assert topics.DEFAULT_JOBS_PREFIX == "$aws"


def test_wildcard_things_build_the_jobs_service_filters() -> None:
    start_all = topics.jobs_start_next("ei", "+")
    assert start_all == "ei/things/+/jobs/start-next"
    assert topic_matches(topics.jobs_update("ei", "+", "+"), topics.jobs_update("ei", "press-7", "j-9"))
    assert topic_matches(start_all, topics.jobs_start_next("ei", "press-7"))


def test_device_topics() -> None:
    assert topics.device_state("press-7") == "edgeinspect/press-7/state"
    assert topics.device_telemetry("press-7") == "edgeinspect/press-7/telemetry"
    assert topics.line_alerts("line-1") == "edgeinspect/line-1/alerts"
    assert topics.line_alerts("line-1", root="t/abc") == "t/abc/line-1/alerts"


@pytest.mark.parametrize("bad", ["", "a/b", "a#", "a+b", "#"])
def test_names_that_would_change_a_topics_shape_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        topics.jobs_notify_next("ei", bad)
    with pytest.raises(ConfigError):
        topics.device_state(bad)


@pytest.mark.parametrize("bad_prefix", ["", "ei/", "e#", "+"])
def test_bad_jobs_prefix_is_refused(bad_prefix: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        topics.jobs_notify_next(bad_prefix, "press-7")


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("ei/things/p7/jobs/notify-next", JobsTopic("p7", "notify-next")),
        ("ei/things/p7/jobs/start-next", JobsTopic("p7", "start-next")),
        ("ei/things/p7/jobs/start-next/accepted", JobsTopic("p7", "start-next", reply="accepted")),
        ("ei/things/p7/jobs/get", JobsTopic("p7", "get")),
        ("ei/things/p7/jobs/get/rejected", JobsTopic("p7", "get", reply="rejected")),
        ("ei/things/p7/jobs/$next/get", JobsTopic("p7", "$next/get")),
        ("ei/things/p7/jobs/j-1/update", JobsTopic("p7", "update", job_id="j-1")),
        ("ei/things/p7/jobs/j-1/update/accepted", JobsTopic("p7", "update", "j-1", "accepted")),
        ("ei/things/p7/jobs/j-1/get", JobsTopic("p7", "describe", job_id="j-1")),
        ("ei/things/p7/jobs/j-1/delete", None),
        ("other/things/p7/jobs/get", None),
        ("ei/things/p7/state", None),
    ],
)
def test_parse_jobs_topic(topic: str, expected: JobsTopic | None) -> None:
    assert parse_jobs_topic("ei", topic) == expected


def test_parse_jobs_topic_roundtrips_the_builders() -> None:
    prefix, thing = "t/abc", "press-7"
    assert parse_jobs_topic(prefix, topics.accepted(topics.jobs_update(prefix, thing, "j"))) == JobsTopic(
        thing, "update", "j", "accepted"
    )
