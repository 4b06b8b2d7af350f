"""No secret in a log: URLs lose their query string and their password."""

from __future__ import annotations

from fetchcore.observe import redact_url, redact_urls
from tests.unit.observe.sequences import PRESIGNED


class TestRedactUrl:
    def test_a_presigned_url_keeps_its_host_and_key_but_not_its_signature(self) -> None:
        redacted = redact_url(PRESIGNED)
        assert redacted == (
            "https://hub-bucket.s3.eu-west-1.amazonaws.com/fetch/sha256-abc?REDACTED"
        )
        for secret in ("X-Amz-Signature", "deadbeefcafe", "X-Amz-Credential", "AKIAEXAMPLE"):
            assert secret not in redacted

    def test_a_password_in_a_url_is_replaced_but_the_user_is_kept(self) -> None:
        url = "postgresql+asyncpg://hub:s3cret@db.internal:5432/hub"
        assert redact_url(url) == "postgresql+asyncpg://hub:REDACTED@db.internal:5432/hub"

    def test_a_url_without_query_or_password_is_unchanged(self) -> None:
        url = "s3://bucket/prefix/sha256-abc"
        assert redact_url(url) == url

    def test_a_fragment_is_dropped(self) -> None:
        assert redact_url("https://h/p#token=abc") == "https://h/p"

    def test_an_unparseable_url_is_redacted_whole(self) -> None:
        assert redact_url("http://[::1/x?sig=1") == "REDACTED"


class TestRedactUrlsInText:
    def test_every_url_inside_a_message_is_redacted(self) -> None:
        text = f"GET {PRESIGNED} failed; index at postgresql://u:pw@db/x said 'no'"
        redacted = redact_urls(text)
        assert "X-Amz-Signature" not in redacted
        assert "pw@" not in redacted
        assert redacted.startswith("GET https://hub-bucket.s3.eu-west-1.amazonaws.com/fetch/")
        assert redacted.endswith("postgresql://u:REDACTED@db/x said 'no'")

    def test_text_without_urls_is_unchanged(self) -> None:
        assert redact_urls("object sha256:abc is missing") == "object sha256:abc is missing"
