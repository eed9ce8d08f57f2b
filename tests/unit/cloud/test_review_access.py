"""The review app's reviewer list and sessions (pure logic; the HTTP side is tests/integration/review)."""

from __future__ import annotations

import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect_cloud.review.access import Reviewers, session_value


def test_reviewers_parse_and_answer_who_sent_a_request() -> None:
    reviewers = Reviewers.parse("ana:token-of-ana, bob:token-of-bob,")
    assert reviewers.who({"authorization": "Bearer token-of-bob"}) == "bob"
    assert reviewers.who({"authorization": "Bearer token-of-bo"}) is None
    assert reviewers.who({"cookie": f"x=1; ei_review={session_value('ana', 'token-of-ana')}"}) == "ana"
    assert reviewers.who({"cookie": f"ei_review={session_value('ana', 'token-of-bob')}"}) is None
    assert reviewers.who({"cookie": "ei_review=ana:token-of-ana"}) is None, "the token is not a session"
    assert reviewers.sign_in("ana", "token-of-ana") and not reviewers.sign_in("ana", "token-of-bob")
    assert not reviewers.sign_in("eve", "")


@pytest.mark.parametrize("text", ["ana=secret-token-1", "ana:short", "bad name:long-enough-token", ""])
def test_a_malformed_list_is_refused_without_echoing_a_token(text: str) -> None:
    with pytest.raises(ConfigError, match="EI_REVIEW_USERS") as caught:
        Reviewers.parse(text)
    assert "secret-token" not in str(caught.value) and "long-enough" not in str(caught.value)


def test_two_reviewers_may_not_share_a_token() -> None:
    with pytest.raises(ConfigError, match="share a token"):
        Reviewers.parse("ana:same-token-1,bob:same-token-1")
