"""Every MQTT topic edgeinspect publishes or subscribes to, named in one place, plus wildcard matching.

Services never spell a topic as a string literal: they call these functions, so the device, the cloud
jobs service and the tests can never drift apart. Deployment jobs use the AWS IoT Jobs MQTT API
(``{prefix}/things/{thing}/jobs/...``); ``prefix`` is ``$aws`` on AWS IoT Core and any plain string
(``ei``) on a broker where our own jobs service plays AWS's part. Pass ``"+"`` as a thing or job id to
get the wildcard filter that jobs service subscribes to.

Example:
    >>> jobs_update("$aws", "press-7", "deploy-42")
    '$aws/things/press-7/jobs/deploy-42/update'
    >>> accepted(jobs_start_next("ei", "press-7"))
    'ei/things/press-7/jobs/start-next/accepted'
    >>> topic_matches("ei/things/+/jobs/#", "ei/things/press-7/jobs/notify-next")
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgeinspect.core.errors import ConfigError

DEFAULT_JOBS_PREFIX = "$aws"
"""AWS IoT Core's reserved prefix; a plain broker uses whatever the jobs service was configured with."""

EDGEINSPECT_ROOT = "edgeinspect"
"""Root of our own device topics (state, telemetry, alerts); tests pass a unique root instead."""

_SHARE_PREFIX = re.compile(r"^\$share/[^/#+]+/")
_JOBS_TOPIC = re.compile(
    r"^things/(?P<thing>[^/]+)/jobs/(?P<action>notify-next|get|start-next|\$next/get|(?P<job>[^/]+)/(get|update))"
    r"(?:/(?P<reply>accepted|rejected))?$"
)


def _level(kind: str, value: str) -> str:
    """Reject a name that would change the topic's shape (a slash, a ``#``, or a ``+`` inside a word)."""
    if not value or "/" in value or "#" in value or "\x00" in value or ("+" in value and value != "+"):
        raise ConfigError(
            f"invalid MQTT topic level for {kind}: {value!r}",
            hint=f"a {kind} must be non-empty and contain no '/', '#' or '+'",
        )
    return value


def _prefix(prefix: str) -> str:
    if not prefix or prefix.endswith("/") or "#" in prefix or "+" in prefix:
        raise ConfigError(
            f"invalid MQTT jobs prefix {prefix!r}",
            hint="use '$aws' for AWS IoT Core or a word such as 'ei', without wildcards or a trailing '/'",
        )
    return prefix


def _jobs(prefix: str, thing: str) -> str:
    return f"{_prefix(prefix)}/things/{_level('thing name', thing)}/jobs"


def accepted(topic: str) -> str:
    """The reply topic on which the jobs service accepts a request sent to ``topic``."""
    return f"{topic}/accepted"


def rejected(topic: str) -> str:
    """The reply topic on which the jobs service rejects a request sent to ``topic``."""
    return f"{topic}/rejected"


def jobs_notify_next(prefix: str, thing: str) -> str:
    """Where the jobs service announces the thing's next pending job (or ``{}`` when none is left)."""
    return f"{_jobs(prefix, thing)}/notify-next"


def jobs_get_next(prefix: str, thing: str) -> str:
    """Ask for the next pending job without starting it (DescribeJobExecution of ``$next``)."""
    return f"{_jobs(prefix, thing)}/$next/get"


def jobs_start_next(prefix: str, thing: str) -> str:
    """Claim the next pending job: it moves to IN_PROGRESS and its document comes back on ``accepted``."""
    return f"{_jobs(prefix, thing)}/start-next"


def jobs_update(prefix: str, thing: str, job_id: str) -> str:
    """Report a job execution's status (IN_PROGRESS, SUCCEEDED, FAILED) with ``statusDetails``."""
    return f"{_jobs(prefix, thing)}/{_level('job id', job_id)}/update"


def jobs_describe(prefix: str, thing: str, job_id: str) -> str:
    """Describe one job execution (DescribeJobExecution); ``"+"`` as the job id also matches ``$next/get``."""
    return f"{_jobs(prefix, thing)}/{_level('job id', job_id)}/get"


def jobs_get_pending(prefix: str, thing: str) -> str:
    """List the thing's pending job executions (GetPendingJobExecutions)."""
    return f"{_jobs(prefix, thing)}/get"


def device_state(thing: str, *, root: str = EDGEINSPECT_ROOT) -> str:
    """A device's retained state (models loaded, health), so a new subscriber sees it at once."""
    return f"{_prefix(root)}/{_level('thing name', thing)}/state"


def device_telemetry(thing: str, *, root: str = EDGEINSPECT_ROOT) -> str:
    """A device's periodic figures (throughput, latency, defect rate)."""
    return f"{_prefix(root)}/{_level('thing name', thing)}/telemetry"


def line_alerts(line: str, *, root: str = EDGEINSPECT_ROOT) -> str:
    """Alerts raised for a production line (defect bursts, camera down)."""
    return f"{_prefix(root)}/{_level('line id', line)}/alerts"


@dataclass(frozen=True)
class JobsTopic:
    """A jobs topic taken apart, so the jobs service can route a request without string surgery.

    ``action`` is ``notify-next``, ``get`` (pending list), ``$next/get``, ``start-next``, ``update`` or
    ``describe`` (``{jobId}/get``); ``reply`` is ``accepted``/``rejected`` on a reply topic, else None.
    """

    thing: str
    action: str
    job_id: str | None = None
    reply: str | None = None


def parse_jobs_topic(prefix: str, topic: str) -> JobsTopic | None:
    """Take a concrete jobs topic apart; None when it is not a jobs topic under ``prefix``."""
    head = f"{_prefix(prefix)}/"
    if not topic.startswith(head):
        return None
    found = _JOBS_TOPIC.match(topic[len(head) :])
    if found is None:
        return None
    job_id = found.group("job")
    action = found.group("action")
    if job_id is not None:
        action = "update" if action.endswith("/update") else "describe"
    return JobsTopic(thing=found.group("thing"), action=action, job_id=job_id, reply=found.group("reply"))


def validate_topic(topic: str) -> str:
    """A topic to publish to: non-empty, no wildcards, no NUL, at most 65535 UTF-8 bytes."""
    if not topic or "+" in topic or "#" in topic or "\x00" in topic or len(topic.encode()) > 65535:
        raise ConfigError(
            f"invalid MQTT topic to publish to: {topic!r}",
            hint="build topics with edgeinspect.core.topics; wildcards are only valid in subscriptions",
        )
    return topic


def validate_filter(topic_filter: str) -> str:
    """A subscription filter: ``+`` fills a whole level, ``#`` only as the whole last level."""
    levels = _SHARE_PREFIX.sub("", topic_filter).split("/")
    bad = (
        not topic_filter
        or "\x00" in topic_filter
        or any("#" in lvl and (lvl != "#" or i != len(levels) - 1) for i, lvl in enumerate(levels))
        or any("+" in lvl and lvl != "+" for lvl in levels)
    )
    if bad:
        raise ConfigError(
            f"invalid MQTT topic filter {topic_filter!r}",
            hint="'+' must be a whole level and '#' only the whole last level, e.g. 'ei/things/+/jobs/#'",
        )
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` by the MQTT rules.

    ``+`` matches exactly one level (possibly empty), ``#`` the parent level and everything below it,
    and a filter starting with a wildcard never matches a ``$``-topic (``$aws/...``, ``$SYS/...``), as
    brokers do. A shared subscription (``$share/group/filter``) matches what ``filter`` matches.
    """
    want = _SHARE_PREFIX.sub("", topic_filter).split("/")
    got = topic.split("/")
    if topic.startswith("$") and want[0] in ("+", "#"):
        return False
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(got) or (level not in ("+", got[i])):
            return False
    return len(want) == len(got)
