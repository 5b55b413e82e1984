"""The journal in S3: `<prefix>/sessions/<YYYY-MM-DD>/<utc stamp>-<run id>.json`.

Every write is a PutObject with `IfNoneMatch="*"` (S3's create-only conditional write: a
stale or concurrent writer gets 412 instead of replacing anything, D2/X5) and
`ServerSideEncryption="AES256"` (S5), then read back and compared (D1). A PUT is atomic
in S3: readers see the whole object or none of it. Quarantine copies go to
`<prefix>/quarantine/<key below prefix>`, also encrypted, and the original is deleted only
after the copy is confirmed (D3).

Preflight locates the bucket with GetBucketLocation, not HeadBucket: AWS authorises
HeadBucket as s3:ListBucket with no s3:prefix, which the least-privilege role in
deploy/cloudformation.yaml refuses (it grants s3:ListBucket only under the state prefix).

A failed call is repeated under the project's one retry policy (`common.retry`, C6), as
every other client's: throttling, 5xx and lost connections are tried again within a
deadline, with seeded jitter, a log line per retry. botocore's own retries are off
(`client_config()`, used for the default client; a client passed in should be made the
same way), or the two would multiply behind one write. The project's policy rather than
botocore's standard mode because the broker and Secrets Manager clients need what only it
has (Retry-After, a deadline, an injectable clock and jitter for deterministic tests), and
one policy for all is what keeps the waits of one run bounded and explainable.
"""

import contextlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from datetime import date
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from tecl_pipeline.adapters.aws.transient import TRANSIENT_CODES, transient_answer
from tecl_pipeline.common.endpoints import is_loopback
from tecl_pipeline.common.events import EventSink
from tecl_pipeline.common.retry import RetryableError, RetryPolicy, call_with_retry
from tecl_pipeline.state.errors import JournalUnavailableError
from tecl_pipeline.state.journal.base import (
    JournalBase,
    RecordExists,
    RecordMissing,
    StoreFailed,
    check_spool,
    session_of,
    utc_stamp,
)
from tecl_pipeline.state.journal.records import MAX_RECORD_BYTES
from tecl_pipeline.state.journal.spool import Spool

log = logging.getLogger(__name__)

SSE = "AES256"
DEFAULT_RETRY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=5.0, deadline=30.0)
# The IAM action each call needs: what an operator must grant, so what messages name (A4).
_IAM_ACTION = MappingProxyType(
    {
        "GetBucketLocation": "s3:GetBucketLocation",
        "ListObjectsV2": "s3:ListBucket",
        "GetObject": "s3:GetObject",
        "HeadObject": "s3:GetObject (HeadObject)",
        "PutObject": "s3:PutObject",
        "CopyObject": "s3:GetObject + s3:PutObject (CopyObject)",
        "DeleteObject": "s3:DeleteObject",
    }
)
# HEAD responses have no body, so botocore reports the bare status as the code.
_STATUS_CODES = MappingProxyType(
    {
        "301": "PermanentRedirect",
        "400": "BadRequest",
        "403": "AccessDenied",
        "404": "NotFound",
        "412": "PreconditionFailed",
        "500": "InternalError",
        "503": "ServiceUnavailable",
    }
)
_REGION_CODES = frozenset(
    {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
)
_UNREACHABLE_CODES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ProxyConnectionError",
        "SSLError",
    }
)
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def valid_bucket(name: str) -> bool:
    return bool(_BUCKET_NAME.match(name)) and ".." not in name


def client_config() -> Any:
    """botocore Config: one attempt per call (the journal retries), short timeouts."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=15,
    )


def default_s3_client() -> Any:
    """An S3 client from the environment's credentials and region, with client_config()."""
    from tecl_pipeline.adapters.aws.session import aws_session

    return aws_session().client("s3", config=client_config())


class _S3Failed(StoreFailed):
    def __init__(
        self,
        action: str,
        resource: str,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(action, resource, code, detail)
        self.headers = headers or {}


class _S3Transient(RetryableError):
    """Carries an S3 failure worth another attempt through `call_with_retry`."""

    def __init__(self, failure: _S3Failed) -> None:
        super().__init__(str(failure))
        self.failure = failure


class S3Journal(JournalBase):
    _write_action = _IAM_ACTION["PutObject"]

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        *,
        spool: Spool,
        on_event: EventSink | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        read_only: bool = False,
    ) -> None:
        super().__init__(spool, on_event, read_only=read_only)
        self._client = client
        self._retry = retry if retry is not None else DEFAULT_RETRY
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._spool_required = spool
        self.location = f"s3://{bucket}/{self._prefix}" if self._prefix else f"s3://{bucket}"

    # -- preflight ---------------------------------------------------------------------

    def preflight(self) -> None:
        """Bucket exists, is in the client's region, is reachable, and a probe object can
        be written (create-only, encrypted), read back and removed; the spool is writable.
        Any failure: JournalUnavailableError naming action, resource and cause."""
        self._writable()
        self._check_transport()
        check_spool(self._spool_required)
        try:
            located = self._call("GetBucketLocation", None)
        except _S3Failed as exc:
            raise self._unavailable(exc) from exc
        bucket_region = bucket_region_of(located.get("LocationConstraint"))
        client_region = self._client.meta.region_name
        if bucket_region and client_region and bucket_region != client_region:
            raise JournalUnavailableError(
                f"journal preflight failed: bucket s3://{self._bucket} is in region "
                f"{bucket_region} but the S3 client is configured for {client_region} "
                "(BucketRegionMismatch); set the client's region to the bucket's. "
                "No orders will be sent",
                action=_IAM_ACTION["GetBucketLocation"],
                resource=f"s3://{self._bucket}",
                code="BucketRegionMismatch",
            )
        # Reads alone do not prove that today's record can be written (A4): probe it, under
        # its own prefix so that readers of sessions/ never see it.
        probe = self._key(f"preflight/{utc_stamp()}-{uuid.uuid4().hex}.json")
        body = json.dumps({"probe": probe}).encode()
        try:
            self._put(probe, body)
            back, encryption = self._get(probe)
            if back != body:
                raise _S3Failed(
                    "verify", self._uri(probe), "ReadBackMismatch", "probe read back differently"
                )
            if encryption != SSE:
                raise _S3Failed(
                    "verify", self._uri(probe), "NotEncrypted", f"ServerSideEncryption={encryption}"
                )
        except _S3Failed as exc:
            raise self._unavailable(exc) from exc
        except RecordExists:
            pass  # a probe of that very name exists: whoever wrote it, the bucket is writable
        finally:
            self._forget(probe)

    def _check_transport(self) -> None:
        endpoint = str(self._client.meta.endpoint_url or "")
        parts = urlsplit(endpoint)
        if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
            # Signed requests and the journal's contents must not cross a network in clear.
            raise JournalUnavailableError(
                f"S3 endpoint {endpoint} is not https (S5); plain http is allowed only to "
                "this machine, so nothing was sent to it and no orders will be",
                action="connect",
                resource=endpoint,
                code="InsecureEndpoint",
            )

    def _unavailable(self, exc: _S3Failed) -> JournalUnavailableError:
        if (
            exc.code in ("NoSuchBucket", "NotFound")
            and exc.action == _IAM_ACTION["GetBucketLocation"]
        ):
            hint = f"bucket {self._bucket!r} does not exist or is not visible to this account"
            code = "NoSuchBucket"
        elif exc.code in _REGION_CODES or (
            # A redirect names the bucket's region in this header: only a differing one counts.
            exc.headers.get("x-amz-bucket-region") not in (None, self._client.meta.region_name)
        ):
            region = exc.headers.get("x-amz-bucket-region", "another region")
            hint = (
                f"bucket {self._bucket!r} is in {region} but the S3 client is configured for "
                f"{self._client.meta.region_name}; set the client's region to the bucket's"
            )
            code = exc.code
        elif exc.code == "AccessDenied":
            hint = f"the run's credentials are not allowed {exc.action} on {exc.resource}"
            code = exc.code
        elif exc.code in _UNREACHABLE_CODES:
            hint = (
                f"S3 endpoint {self._client.meta.endpoint_url} is unreachable (network, VPC "
                "endpoint, security group or proxy)"
            )
            code = exc.code
        elif exc.code in TRANSIENT_CODES:
            hint = "S3 is throttling or unavailable after the retries"
            code = exc.code
        else:
            hint = "the journal cannot be used"
            code = exc.code
        return JournalUnavailableError(
            f"journal preflight failed: {exc.action} on {exc.resource}: {code} "
            f"({exc.detail}); {hint}. No orders will be sent",
            action=exc.action,
            resource=exc.resource,
            code=code,
        )

    # -- the back-end primitives -------------------------------------------------------

    def _key(self, ref: str) -> str:
        return f"{self._prefix}/{ref}" if self._prefix else ref

    def _ref_of(self, key: str) -> str:
        return key[len(self._prefix) + 1 :] if self._prefix else key

    def _uri(self, key: str) -> str:
        return f"s3://{self._bucket}/{key}"

    def _where(self, ref: str) -> str:
        return self._uri(self._key(ref))

    def _session_days(self) -> list[date]:
        prefix = self._key("sessions/")
        pages = self._pages(prefix, delimiter="/")
        return [
            day
            for page in pages
            for common in page.get("CommonPrefixes", [])
            if (day := session_of(common["Prefix"].rstrip("/").rsplit("/", 1)[-1]))
        ]

    def _session_refs(self, session: date) -> list[tuple[str, int | None]]:
        pages = self._pages(self._key(f"sessions/{session.isoformat()}/"), delimiter=None)
        return self._records_by_session(pages).get(session, [])

    def _all_session_refs(self) -> dict[date, list[tuple[str, int | None]]]:
        # One paged listing of every record (1,000 keys a page), not one per session.
        return self._records_by_session(self._pages(self._key("sessions/"), delimiter=None))

    def _records_by_session(
        self, pages: list[dict[str, Any]]
    ) -> dict[date, list[tuple[str, int | None]]]:
        """The record refs of listed pages by session, in name order: exactly
        sessions/<date>/<name>.json, as the local store's folders hold them."""
        found: dict[date, list[tuple[str, int | None]]] = {}
        for page in pages:
            for item in page.get("Contents", []):
                ref = self._ref_of(item["Key"])
                parts = ref.split("/")
                day = session_of(parts[1]) if len(parts) == 3 else None
                if day is not None and ref.endswith(".json"):
                    found.setdefault(day, []).append((ref, int(item["Size"])))
        return {day: sorted(refs) for day, refs in found.items()}

    def _read(self, ref: str) -> bytes:
        data, _ = self._get(self._key(ref))
        return data

    def _create(self, ref: str, data: bytes) -> None:
        self._put(self._key(ref), data)

    def _confirm(self, ref: str, data: bytes) -> None:
        key = self._key(ref)
        try:
            back, encryption = self._get(key)
        except RecordMissing:
            back, encryption = None, None
        if back != data:
            raise _S3Failed(
                "verify (s3:GetObject)", self._uri(key), "ReadBackMismatch", "differs from the PUT"
            )
        if encryption != SSE:
            raise _S3Failed(
                "verify (s3:GetObject)",
                self._uri(key),
                "NotEncrypted",
                f"ServerSideEncryption={encryption}, expected {SSE}",
            )

    def _quarantine(self, ref: str) -> tuple[str, str | None]:
        source = self._key(ref)
        head = self._head_or_none(source)
        if head is None:
            raise RecordMissing(source)
        etag = head["ETag"]
        target = self._key(f"quarantine/{ref}")
        existing = self._head_or_none(target)
        if existing is not None and existing["ETag"] != etag:
            # A different bad object was quarantined under this name before: keep both.
            target = self._key(f"quarantine/{ref}.{utc_stamp()}")
            existing = None
        if existing is None:
            try:
                self._call(
                    "CopyObject",
                    target,
                    CopySource={"Bucket": self._bucket, "Key": source},
                    # Copy exactly the bytes judged bad, into a name nobody else holds.
                    CopySourceIfMatch=etag,
                    IfNoneMatch="*",
                    MetadataDirective="COPY",
                    ServerSideEncryption=SSE,
                )
            except _S3Failed as exc:
                if exc.code != "PreconditionFailed":
                    raise
            copied = self._head_or_none(target)
            if copied is None or copied["ETag"] != etag:
                raise _S3Failed(
                    "verify (s3:GetObject)",
                    self._uri(target),
                    "CopyMismatch",
                    "the quarantine copy is missing or differs; original kept",
                )
        try:
            self._call("DeleteObject", source)
        except _S3Failed as exc:
            return self._uri(target), f"{exc.action}: {exc.code}"
        return self._uri(target), None

    # -- S3 calls, with errors turned into messages ------------------------------------

    def _put(self, key: str, data: bytes) -> None:
        try:
            self._call(
                "PutObject",
                key,
                Body=data,
                ContentType="application/json",
                IfNoneMatch="*",
                ServerSideEncryption=SSE,
                # S3 checks the body against this: a damaged upload is refused, not stored.
                ChecksumAlgorithm="SHA256",
            )
        except _S3Failed as exc:
            if exc.code == "PreconditionFailed":
                raise RecordExists(key) from None
            raise

    def _get(self, key: str) -> tuple[bytes, str | None]:
        try:
            response = self._call("GetObject", key)
            body = response["Body"]
            try:
                # Bounded: an oversized object is judged on its first bytes, not loaded.
                data = body.read(MAX_RECORD_BYTES + 1)
            finally:
                body.close()
        except _S3Failed as exc:
            if exc.code in ("NoSuchKey", "NotFound"):
                raise RecordMissing(key) from None
            raise
        except BotoCoreError as exc:
            raise _S3Failed(
                _IAM_ACTION["GetObject"], self._uri(key), type(exc).__name__, str(exc)
            ) from exc
        return data, response.get("ServerSideEncryption")

    def _head_or_none(self, key: str) -> dict[str, Any] | None:
        try:
            return self._call("HeadObject", key)
        except _S3Failed as exc:
            if exc.code in ("NoSuchKey", "NotFound"):
                return None
            raise

    def _forget(self, key: str) -> None:
        """Best effort: a probe left behind is harmless (and a lifecycle rule expires it)."""
        with contextlib.suppress(_S3Failed):
            self._call("DeleteObject", key)

    def _pages(self, prefix: str, *, delimiter: str | None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        paginator = self._client.get_paginator("list_objects_v2")
        return self._retrying(
            "ListObjectsV2", self._uri(prefix), lambda: list(paginator.paginate(**kwargs))
        )

    def _call(self, operation: str, key: str | None, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self._client, _snake(operation))
        resource = self._uri(key) if key is not None else f"s3://{self._bucket}"
        if key is not None:
            kwargs["Key"] = key
        return self._retrying(operation, resource, lambda: method(Bucket=self._bucket, **kwargs))

    def _retrying(self, operation: str, resource: str, call: Callable[[], Any]) -> Any:
        """`call` under the retry policy; a botocore failure as an `_S3Failed`.

        A create-only PUT may be repeated after its answer was lost: S3 then answers 412,
        and the write is confirmed by reading it back, as after any other `RecordExists`.
        """

        # Every request, not only preflight's: readers that never preflight (tecl status,
        # live_performance) must not send signed requests in clear either.
        self._check_transport()

        def attempt() -> Any:
            try:
                return call()
            except (ClientError, BotoCoreError) as exc:
                failure = self._failure(operation, resource, exc)
                if _transient(failure, exc):
                    raise _S3Transient(failure) from exc
                raise failure from exc

        def on_retry(attempt_no: int, error: BaseException, wait: float) -> None:
            log.warning(
                "S3 %s failed (attempt %d), retrying in %.2f s: %s",
                operation,
                attempt_no,
                wait,
                error,
            )

        try:
            return call_with_retry(
                attempt, self._retry, sleep=self._sleep, rng=self._rng, on_retry=on_retry
            )
        except _S3Transient as exc:
            failure = exc.failure
            for note in getattr(exc, "__notes__", ()):
                failure.add_note(note)
            raise failure from exc.__cause__

    def _failure(self, operation: str, resource: str, exc: Exception) -> _S3Failed:
        action = _IAM_ACTION[operation]
        if not isinstance(exc, ClientError):
            # Transport errors name the endpoint, never the credentials.
            return _S3Failed(action, resource, type(exc).__name__, str(exc))
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        code = str(error.get("Code") or meta.get("HTTPStatusCode") or "Unknown")
        code = _STATUS_CODES.get(code, code)
        if code == "NotFound" and operation == "GetBucketLocation":
            code = "NoSuchBucket"
        status = meta.get("HTTPStatusCode")
        detail = str(error.get("Message") or "no message")
        if status:
            detail = f"HTTP {status}: {detail}"
        return _S3Failed(action, resource, code, detail, dict(meta.get("HTTPHeaders", {})))


def _transient(failure: _S3Failed, exc: Exception) -> bool:
    """Throttling, a 5xx or no answer: worth another attempt. A definite answer (denied,
    missing, precondition failed, wrong region) is not."""
    status = None
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return transient_answer(failure.code, status) or failure.code in _UNREACHABLE_CODES


def bucket_region_of(location_constraint: str | None) -> str:
    """The region GetBucketLocation's LocationConstraint stands for: S3 answers None (or
    an empty one) for us-east-1 and the legacy "EU" for eu-west-1."""
    if not location_constraint:
        return "us-east-1"
    if location_constraint == "EU":
        return "eu-west-1"
    return location_constraint


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
