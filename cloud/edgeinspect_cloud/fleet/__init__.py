"""Fleet deployment jobs: the store, the jobs service for a plain MQTT broker, and rollout rules.

``FleetStore.open(url)`` gives the CLI and the service the same view of jobs, executions, devices and
thing groups (SQLite or PostgreSQL); :mod:`edgeinspect_cloud.fleet.service` plays AWS IoT Jobs' part of
the MQTT protocol (docs/jobs-protocol.md) against that store.
"""

from edgeinspect_cloud.fleet.errors import (
    FleetDatabaseError,
    FleetError,
    JobNotFoundError,
    JobsRequestRejected,
)
from edgeinspect_cloud.fleet.fleetdb import FleetStore
from edgeinspect_cloud.fleet.records import Device, Execution, Job, Rollout

__all__ = [
    "Device",
    "Execution",
    "FleetDatabaseError",
    "FleetError",
    "FleetStore",
    "Job",
    "JobNotFoundError",
    "JobsRequestRejected",
    "Rollout",
]
