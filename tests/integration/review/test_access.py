"""Who may label captures in ``edgeinspect review`` (the real process over a real ``file://`` capture
store filled by the real uploader): every decision needs a signed-in reviewer and is recorded under
that reviewer's name, never under one the client sends; the page answers only to its own host names
and refuses POSTs from other sites' pages; without named reviewers a token is generated once."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from edgeinspect.core import images

from tests.fixtures.redis_server import RedisServer
from tests.helpers.review import CAPTURE_HEIGHT as HEIGHT
from tests.helpers.review import CAPTURE_WIDTH as WIDTH
from tests.helpers.review import REVIEWERS, bearer, review_process, small_capture_store

ATTACKER = "attacker.test"  # a reserved name; requests only ever go to the loopback address


@pytest.fixture
def store(redis_server: RedisServer, redis_client: redis.Redis, line_id: str, tmp_path: Path) -> str:
    """Two captures, as the edge saw them."""
    return small_capture_store(redis_server.url, redis_client, line_id, tmp_path)


def defect_body(reviewer: str | None = None) -> dict[str, Any]:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[10:20, 10:20] = True
    body: dict[str, Any] = {
        "label": "defect",
        "mask": "data:image/png;base64," + base64.b64encode(images.encode_mask(mask)).decode(),
    }
    if reviewer is not None:
        body["reviewer"] = reviewer
    return body


def provenance(out: Path) -> list[dict[str, Any]]:
    path = out / "provenance.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def first_key(url: str) -> str:
    items = httpx.get(f"{url}/api/captures", headers=bearer("ana"), timeout=30).json()["items"]
    return str(items[0]["key"])


def test_a_label_needs_a_reviewer_and_records_the_signed_in_one(store: str, tmp_path: Path) -> None:
    out = tmp_path / "reviewed"
    with review_process(store, out) as url:
        key = first_key(url)
        anonymous = httpx.post(f"{url}/api/captures/{key}/review", json=defect_body("attacker"), timeout=30)
        assert anonymous.status_code == 401 and "sign in" in anonymous.json()["error"]
        assert provenance(out) == [], "nothing is written for an anonymous client"
        for path in ("/api/captures", f"/api/captures/{key}/image", "/api/export"):
            assert httpx.get(url + path, timeout=30).status_code == 401, path
        assert httpx.post(f"{url}/api/refresh", timeout=30).status_code == 401
        wrong = {"authorization": "Bearer not-a-token"}
        assert (
            httpx.post(f"{url}/api/captures/{key}/review", json=defect_body(), headers=wrong).status_code
            == 401
        )

        # signed in as ana, claiming to be someone else: the label is ana's
        saved = httpx.post(
            f"{url}/api/captures/{key}/review",
            json=defect_body("attacker"),
            headers=bearer("ana"),
            timeout=30,
        )
        assert saved.status_code == 200, saved.text
        assert [(p["reviewer"], p["label"]) for p in provenance(out)] == [("ana", "defect")]
        assert httpx.get(f"{url}/api/whoami", headers=bearer("retrain-test")).json() == {
            "reviewer": "retrain-test"
        }
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_the_browser_signs_in_and_its_cookie_is_not_the_token(store: str, tmp_path: Path) -> None:
    with (
        review_process(store, tmp_path / "reviewed") as url,
        httpx.Client(base_url=url, timeout=30) as browser,
    ):
        redirect = browser.get("/")
        assert redirect.status_code == 303 and redirect.headers["location"] == "/login"
        failed = browser.post("/login", data={"user": "ana", "token": REVIEWERS["retrain-test"]})
        assert failed.status_code == 303 and "failed" in failed.headers["location"]
        signed_in = browser.post("/login", data={"user": "ana", "token": REVIEWERS["ana"]})
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and REVIEWERS["ana"] not in cookie
        assert browser.get("/api/whoami").json() == {"reviewer": "ana"}
        page = browser.get("/")
        assert page.status_code == 200 and REVIEWERS["ana"] not in page.text


def test_other_hosts_and_other_sites_are_refused(store: str, tmp_path: Path) -> None:
    out = tmp_path / "reviewed"
    with review_process(store, out) as url, httpx.Client(base_url=url, timeout=30) as browser:
        port = url.rsplit(":", 1)[1]
        rebound = httpx.get(f"{url}/api/captures", headers={"host": f"{ATTACKER}:{port}", **bearer("ana")})
        assert rebound.status_code == 421 and ATTACKER in rebound.json()["error"]
        assert httpx.get(
            f"{url}/api/captures", headers={"host": f"localhost:{port}", **bearer("ana")}
        ).is_success

        browser.post("/login", data={"user": "ana", "token": REVIEWERS["ana"]})
        key = browser.get("/api/captures").json()["items"][0]["key"]
        other_site = {"origin": f"http://127.0.0.1:{int(port) ^ 1}"}  # another port is another origin
        forged = browser.post(f"/api/captures/{key}/review", json=defect_body(), headers=other_site)
        assert forged.status_code == 403 and "cross-origin" in forged.json()["error"]
        assert browser.post("/api/refresh", headers={"sec-fetch-site": "same-site"}).status_code == 403
        assert provenance(out) == []
        same = {"origin": url}
        assert browser.post(f"/api/captures/{key}/review", json=defect_body(), headers=same).is_success


def test_without_named_reviewers_a_token_is_generated_printed_once_and_reused(
    store: str, tmp_path: Path
) -> None:
    state, log = tmp_path / "state", tmp_path / "review.log"
    env = {"EI_REVIEW_STATE_DIR": str(state)}
    with review_process(store, tmp_path / "reviewed", env=dict(env), log=log) as url:
        token_file = state / "review-token"
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        reviewer = {"authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/api/whoami", headers=reviewer).json() == {"reviewer": "reviewer"}
    assert log.read_text().count(token) == 1
    with review_process(store, tmp_path / "reviewed", env=dict(env), log=log) as url:
        assert httpx.get(f"{url}/api/whoami", headers=reviewer).json() == {"reviewer": "reviewer"}
    assert log.read_text().count(token) == 1, "printed on the first start only"


def test_a_malformed_reviewer_list_stops_the_start_naming_the_variable(store: str, tmp_path: Path) -> None:
    env = {"EI_REVIEW_USERS": "ana=oops"}
    with (
        pytest.raises(pytest.fail.Exception, match="EI_REVIEW_USERS"),
        review_process(store, tmp_path / "reviewed", env=env),
    ):
        pass
