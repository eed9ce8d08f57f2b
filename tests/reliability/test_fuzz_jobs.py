"""Property tests of everything a jobs message carries to the device: ids, payloads, job documents.

Whatever arrives, the result is a typed operation or one of our own errors; never another exception
(which would end the job thread), and never an id that could leave its folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeinspect.core import ids
from edgeinspect.core.errors import MessageError
from edgeinspect_model_manager import protocol
from edgeinspect_model_manager.errors import JobDocumentError
from edgeinspect_model_manager.jobdoc import DeployModel, RemoveModel, parse_job_document
from edgeinspect_model_manager.protocol import Execution
from edgeinspect_model_manager.runner import _parse
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.hostile import FUZZ
from tests.reliability.test_fuzz_json import JSON_VALUES

NASTY_TEXT = st.sampled_from(
    ["", ".", "..", "../x", "a/b", "a\\b", "\x00", "1.10", "v2", "cls", "-a", "a" * 70]
)
IDS = NASTY_TEXT | st.text(max_size=80)
VERSIONS = NASTY_TEXT | st.text(alphabet="0123456789.-ab/", max_size=12) | st.integers() | st.floats()
MODEL = st.fixed_dictionaries(
    {"name": IDS, "version": VERSIONS},
    optional={
        "url": st.sampled_from(["s3://b/k.tar.gz", "https://h/p.tar.gz", "file:///x", "ftp://h/x", ""]) | IDS,
        "sha256": st.sampled_from(["0" * 64, "xyz"]) | IDS,
        "size": st.integers() | st.none(),
    },
)
DOCUMENTS = (
    st.fixed_dictionaries(
        {"operation": st.sampled_from(["deploy_model", "remove_model", "other"]), "model": MODEL},
        optional={"role": IDS, "alias": IDS, "rollback_on_failure": st.booleans() | IDS},
    )
    | st.fixed_dictionaries(
        {
            "type": st.just("new_model"),
            "model_name": IDS,
            "model_version": VERSIONS,
            "model_package_bucket": IDS,
            "model_package_key": IDS,
        }
    )
    | JSON_VALUES
)


@FUZZ
@given(DOCUMENTS | DOCUMENTS.map(json.dumps) | st.text(max_size=200))
def test_a_job_document_is_an_operation_or_a_job_document_error(document: Any) -> None:
    try:
        op = parse_job_document(document)
    except JobDocumentError as exc:
        assert len(exc.message) < 4000
        return
    assert isinstance(op, DeployModel | RemoveModel)
    ids.check_model_name(op.name)
    if op.version is not None:
        ids.check_model_version(op.version)


@FUZZ
@given(IDS, DOCUMENTS)
def test_the_job_thread_turns_any_execution_into_an_operation_or_a_failed_outcome(
    job_id: str, document: Any
) -> None:
    op, failure = _parse(Execution(job_id=job_id, status="QUEUED", document=document))
    assert (op is None) != (failure is None)
    if op is not None:
        ids.check_job_id(job_id)
    else:
        assert failure is not None and failure.status == "FAILED" and failure.reason


@FUZZ
@given(st.dictionaries(st.sampled_from(["execution", "timestamp", "clientToken"]), JSON_VALUES) | JSON_VALUES)
def test_notify_and_start_next_payloads_parse_or_raise_message_error(payload: Any) -> None:
    if not isinstance(payload, dict):
        payload = {"execution": payload}
    try:
        execution = protocol.parse_execution(payload)
    except MessageError as exc:
        assert len(str(exc)) < 400
        return
    assert execution is None or (isinstance(execution.job_id, str) and execution.job_id)


@FUZZ
@given(IDS, VERSIONS)
def test_ids_that_pass_their_rule_always_join_inside_the_base(name: Any, version: Any) -> None:
    base = Path("/srv/models")
    try:
        path = ids.safe_join(base, ids.check_model_name(name), ids.check_model_version(version))
    except (ids.IdentifierError, ids.PathEscapeError):
        return
    assert path.parent.parent == base and ".." not in path.parts


@FUZZ
@given(IDS)
def test_safe_join_never_returns_a_path_outside_or_equal_to_its_base(part: str) -> None:
    base = Path("/srv/staging")
    try:
        path = ids.safe_join(base, part)
    except ids.PathEscapeError:
        return
    assert path.parent == base and path != base
