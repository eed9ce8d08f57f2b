"""The one place botocore's exceptions become ``StorageError``s a factory engineer can act on."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from edgeinspect.core.errors import StorageError
from edgeinspect.core.storage.base import ObjectNotFoundError

_NETWORK = (HTTPClientError, BotoConnectionError, IncompleteReadError)

_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_DENIED_CODES = {
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
}
_BUSY_CODES = {"SlowDown", "ServiceUnavailable", "503", "InternalError", "500", "RequestTimeout"}


def error_code(exc: BaseException) -> str:
    """The S3 error code of a ``ClientError`` (HTTP status for bodiless HEAD replies), else ''."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def root_cause(exc: BaseException) -> BaseException:
    """The botocore error behind boto3's transfer wrappers (``S3UploadFailedError`` hides it)."""
    seen = exc
    while not isinstance(seen, BotoCoreError | ClientError):
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            return exc
        seen = nxt
    return seen


def translate(exc: BaseException, *, url: str, action: str, endpoint: str) -> StorageError:
    """A ``StorageError`` for ``exc`` raised while trying to ``action`` ``url``."""
    cause = root_cause(exc)
    code = error_code(cause)
    where = endpoint or "AWS S3"
    if isinstance(cause, _NETWORK):  # connection refused/reset, timeouts, DNS, TLS, proxy
        return StorageError(
            f"cannot reach the S3 endpoint {where} to {action} {url}: {cause}",
            hint="check the endpoint URL (EI_S3_ENDPOINT_URL), that the server is running, and the network",
        )
    if isinstance(cause, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            f"no S3 credentials to {action} {url}",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or an instance/pod role",
        )
    if code in _MISSING_CODES:
        return ObjectNotFoundError(f"no object at {url}", hint="check the URL, or that its upload finished")
    if code == "NoSuchBucket":
        return StorageError(
            f"the bucket of {url} does not exist at {where}", hint="create it, or fix the URL"
        )
    if code in _DENIED_CODES:
        return StorageError(
            f"access denied to {action} {url} ({code})",
            hint="check the credentials and the bucket policy allow this action",
        )
    if code in _BUSY_CODES:
        return StorageError(
            f"S3 at {where} is busy or failing ({code}) on {action} {url}", hint="retry later"
        )
    if isinstance(cause, ClientError):
        message = cause.response.get("Error", {}).get("Message", "")
        return StorageError(
            f"S3 refused to {action} {url}: {code} {message}".rstrip(), hint="see the S3 error code"
        )
    return StorageError(f"cannot {action} {url}: {cause}", hint="check the S3 settings and the server's logs")
