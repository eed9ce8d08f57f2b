"""The fleet commands end to end on an SQLite file and a file:// registry (no broker needed: the CLI only
writes the database; the service is tested in tests/integration/fleet)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgeinspect_cloud import cli
from edgeinspect_cloud.fleet import FleetStore
from edgeinspect_cloud.registry import ModelRegistry

from tests.helpers.models import make_keys, make_package

MODEL = "surface-cls"


@pytest.fixture
def env(tmp_path: Path) -> tuple[str, str]:
    """``(fleet_db_url, registry_url)``: line-3 has two things; versions 1 (Approved) and 2 (pending)."""
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    registry_url = f"file://{tmp_path / 'registry'}"
    registry = ModelRegistry.open(registry_url)
    keys = make_keys(tmp_path / "keys")
    for _ in range(2):
        registry.register(
            MODEL, lambda n: make_package(tmp_path / "pkgs", MODEL, str(n), "classification", keys)
        )
    registry.approve(MODEL, 1)
    assert cli.main(["fleet", "groups", "add", "line-3", "edge-1", "edge-2", "--fleet-db", db]) == 0
    return db, registry_url


def _deploy(db: str, registry: str, version: int, *extra: str) -> int:
    return cli.main(["deploy", "--model", MODEL, "--version", str(version), "--target", "line-3",
                     "--registry", registry, "--fleet-db", db, *extra])  # fmt: skip


def test_deploy_creates_a_job_whose_document_names_the_approved_package(
    env: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, registry = env
    capsys.readouterr()
    assert (
        _deploy(db, registry, 1, "--role", "shadow", "--waves", "2", "--abort-threshold", "50", "--json") == 0
    )
    job = json.loads(capsys.readouterr().out)
    package = ModelRegistry.open(registry).get(MODEL, 1).registration.package
    assert job["document"] == {
        "operation": "deploy_model",
        "model": {
            "name": MODEL,
            "version": "1",
            "url": package.url,
            "sha256": package.sha256,
            "size": package.size,
        },
        "role": "shadow",
        "rollback_on_failure": True,
    }
    assert (job["waves"], job["abortThresholdPercentage"], job["status"]) == (2, 50.0, "IN_PROGRESS")
    assert [(e["thingName"], e["status"]) for e in job["executions"]] == [
        ("edge-1", "QUEUED"),
        ("edge-2", "SCHEDULED"),
    ]
    assert job["jobId"].startswith(f"deploy-{MODEL}-1-")


def test_deploy_refuses_a_version_that_is_not_approved(
    env: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, registry = env
    capsys.readouterr()
    assert _deploy(db, registry, 2) == 1
    err = capsys.readouterr().err
    assert "version 2 is PendingManualApproval, not Approved" in err
    assert f"edgeinspect registry approve {MODEL} 2" in err
    with FleetStore.open(db) as store:
        assert store.jobs.list_jobs() == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--target", "line-9"), "neither a thing group"),
        (("--abort-threshold", "100"), "abort threshold must be in [0, 100)"),
        (("--waves", "0"), "waves must be at least 1"),
        (("--job-id", "bad id!"), "invalid job id"),
    ],
)
def test_deploy_explains_bad_options(
    env: tuple[str, str], capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    db, registry = env
    assert _deploy(db, registry, 1, *extra) == 1
    assert message in capsys.readouterr().err


def test_jobs_list_show_and_cancel(env: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, registry = env
    assert _deploy(db, registry, 1, "--job-id", "deploy-a") == 0
    capsys.readouterr()
    assert cli.main(["jobs", "list", "--fleet-db", db]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["JOB", "STATUS", "MODEL", "TARGETS"]
    assert table[1].split()[:5] == ["deploy-a", "IN_PROGRESS", f"{MODEL}:1", "line-3", "1/1"]
    assert "QUEUED 2" in table[1]

    assert cli.main(["jobs", "cancel", "deploy-a", "--reason", "wrong line", "--fleet-db", db, "--json"]) == 0
    canceled = json.loads(capsys.readouterr().out)
    assert (canceled["status"], canceled["reason"]) == ("CANCELED", "wrong line")
    assert {e["status"] for e in canceled["executions"]} == {"CANCELED"}

    assert cli.main(["jobs", "show", "deploy-a", "--fleet-db", db]) == 0
    shown = capsys.readouterr().out
    assert "job deploy-a: CANCELED" in shown and "reason        wrong line" in shown
    assert cli.main(["jobs", "list", "--status", "COMPLETED", "--fleet-db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli.main(["jobs", "show", "nope", "--fleet-db", db]) == 1
    assert "no job 'nope'" in capsys.readouterr().err


def test_devices_add_and_list(env: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = env
    assert cli.main(["devices", "add", "edge-9", "--group", "line-4", "--fleet-db", db]) == 0
    with FleetStore.open(db) as store:
        models = [{"name": MODEL, "version": "1", "role": "primary", "loaded": True},
                  {"name": MODEL, "version": "0", "role": "standby", "loaded": False}]  # fmt: skip
        last_job = {"job_id": "j1", "status": "SUCCEEDED"}
        store.devices.record_state("edge-1", {"state": "idle", "last_job": last_job, "models": models})
    capsys.readouterr()
    assert cli.main(["devices", "list", "--fleet-db", db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["THING", "GROUPS", "LAST", "SEEN", "STATE", "LAST", "JOB", "MODELS"]
    assert lines[1].split()[:2] == ["edge-1", "line-3"] and lines[1].endswith(
        f"j1 SUCCEEDED  {MODEL}:1 (primary)"
    )
    assert lines[3].split()[:4] == ["edge-9", "line-4", "never", "-"]
    assert cli.main(["devices", "list", "--group", "line-4", "--fleet-db", db, "--json"]) == 0
    assert [d["thingName"] for d in json.loads(capsys.readouterr().out)] == ["edge-9"]
    assert cli.main(["fleet", "groups", "remove", "line-3", "edge-2", "--fleet-db", db]) == 0
    assert capsys.readouterr().out == "line-3: removed edge-2\n"
    assert cli.main(["fleet", "groups", "list", "--fleet-db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"line-3": ["edge-1"], "line-4": ["edge-9"]}


def test_jobs_create_takes_any_document(
    env: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = env
    document = {"operation": "remove_model", "model": {"name": MODEL, "version": "1"}}
    (tmp_path / "remove.json").write_text(json.dumps(document))
    args = ["jobs", "create", "--document", str(tmp_path / "remove.json"), "--target", "thing:edge-1",
            "--job-id", "remove-1", "--fleet-db", db, "--json"]  # fmt: skip
    capsys.readouterr()
    assert cli.main(args) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["document"] == document and [e["thingName"] for e in created["executions"]] == ["edge-1"]
    (tmp_path / "remove.json").write_text("[1]")
    assert cli.main([*args[:-3], "--job-id", "remove-2", "--fleet-db", db]) == 1
    assert "is not a JSON object" in capsys.readouterr().err


def test_deploy_a_model_named_like_its_alias_and_with_an_explicit_alias(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    registry_url = f"file://{tmp_path / 'registry'}"
    registry = ModelRegistry.open(registry_url)
    keys = make_keys(tmp_path / "keys")
    registry.register(
        "defect-cls", lambda n: make_package(tmp_path / "p", "defect-cls", str(n), "classification", keys)
    )
    registry.approve("defect-cls", 1)
    assert cli.main(["devices", "add", "edge-1", "--group", "line-3", "--fleet-db", db]) == 0
    base = ["deploy", "--model", "defect-cls", "--version", "1", "--target", "line-3",
            "--registry", registry_url, "--fleet-db", db]  # fmt: skip
    capsys.readouterr()
    assert cli.main([*base, "--json"]) == 0  # the device's default alias defect-cls pins this version
    assert "alias" not in json.loads(capsys.readouterr().out)["document"]
    assert cli.main([*base, "--alias", "line-3-cls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["document"]["alias"] == "line-3-cls"


def test_deploy_in_cumulative_percentage_waves(
    env: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, registry = env
    capsys.readouterr()
    assert _deploy(db, registry, 1, "--wave-pct", "50,100", "--json") == 0
    job = json.loads(capsys.readouterr().out)
    assert job["waves"] == 2
    assert [(e["thingName"], e["status"]) for e in job["executions"]] == [
        ("edge-1", "QUEUED"),
        ("edge-2", "SCHEDULED"),
    ]
    assert _deploy(db, registry, 1, "--wave-pct", "10,5,100") == 1
    assert "wave percentages must grow strictly" in capsys.readouterr().err


def test_set_threshold_queues_an_audited_override_job(
    env: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = env
    capsys.readouterr()
    args = ["set-threshold", "--model", MODEL, "--image", "0.3", "--pixel", "manifest", "--target", "line-3",
            "--reason", "escapes on line 3", "--by", "ana", "--fleet-db", db, "--json"]  # fmt: skip
    assert cli.main(args) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["document"] == {
        "operation": "set_threshold",
        "model": {"name": MODEL},
        "thresholds": {"image": 0.3, "pixel": None},
        "requested_by": "ana",
        "reason": "escapes on line 3",
    }
    assert job["jobId"].startswith(f"threshold-{MODEL}-all-")
    assert sorted(e["thingName"] for e in job["executions"]) == ["edge-1", "edge-2"]
    assert cli.main(["set-threshold", "--model", MODEL, "--version", "1", "--clear", "--target", "line-3",
                     "--job-id", "clear-1", "--fleet-db", db]) == 0  # fmt: skip
    assert "image=manifest, pixel=manifest" in capsys.readouterr().out
    assert cli.main(["jobs", "list", "--fleet-db", db]) == 0
    listed = capsys.readouterr().out
    assert f"threshold {MODEL}:1 image=manifest pixel=manifest" in listed
    assert f"threshold {MODEL}:* image=0.3 pixel=manifest" in listed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--image", "1.5"), "between 0 and 1"),
        (("--image", "nan"), "between 0 and 1"),
        (("--image", "high"), "must be a number"),
        ((), "nothing to set"),
        (("--clear", "--image", "0.3"), "--clear sets both"),
        (("--image", "0.3", "--version", "../1"), "invalid model version"),
    ],
)
def test_set_threshold_explains_bad_values(
    env: tuple[str, str], capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    db, _ = env
    try:
        code = cli.main(["set-threshold", "--model", MODEL, "--target", "line-3", "--fleet-db", db, *extra])
    except SystemExit as exc:  # argparse refuses a value before the command runs
        code = int(exc.code or 0)
    assert code != 0
    assert message in capsys.readouterr().err
    with FleetStore.open(db) as store:
        assert store.jobs.list_jobs(None, 10) == []
