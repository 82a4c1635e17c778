#!/usr/bin/env python3
"""A Backblaze B2 native-API server for tests, on top of b2sdk's RawSimulator.

No B2 server exists that a test can run locally, but b2sdk ships ``RawSimulator``:
Backblaze's own in-memory implementation of the raw B2 API, used by their SDK's tests.
This file puts it behind real HTTP so that arca's B2 client is tested over the wire:

* API calls: ``/b2api/v{2,3,4}/b2_<name>`` (GET with query parameters or POST with a
  JSON body, as B2 accepts both).
* Uploads: the ``uploadUrl`` handed out by ``b2_get_upload_url`` /
  ``b2_get_upload_part_url`` points back at this server
  (``/b2api/v3/upload/<bucketId>/<id>``, ``/b2api/v3/upload_part/<fileId>/<id>``).
* Downloads: ``GET|HEAD /file/<bucketName>/<fileName>`` and
  ``/b2api/v3/b2_download_file_by_id?fileId=``, with ``Range: bytes=a-b`` (206 +
  Content-Range, 416 when the range starts past the end).
* Errors are B2's JSON ``{"status": N, "code": "...", "message": "..."}`` with the
  status/code that b2sdk's ``interpret_b2_error`` maps back to the simulator's exception.

The simulator's semantics are used as they are. The few places where this file adds or
adjusts behaviour are marked "ADAPTER:" below; they fix limits and bugs of the
in-process simulator that matter only once it is a long-running server (counters that
run out, file ids that collide between buckets, prefix listings, bucket-restricted keys
on calls that do not name the bucket) or add what B2 does at the HTTP level (token
checks, file-name rules, ranges, fault injection).

At startup it creates one account, private buckets ``arca-test`` and ``arca-other``, and
an application key restricted to ``arca-test`` (listBuckets, listFiles, readFiles,
writeFiles, deleteFiles), and writes the credentials as JSON to ``--credentials-file``
(written only once the socket listens, so its presence means "ready").

Faults: ``--fail-every N`` answers every Nth request (counted over all requests) with
503 ``service_unavailable``; when that request is an upload, its upload URL and token are
also invalidated (later use gets 401 ``expired_auth_token``), so a client must fetch a
new upload URL, as B2's documentation requires after a 503 on upload.
``--expire-tokens-every N`` expires the account authorization token presented by every
Nth API call or download (counted over those), which then gets 401
``expired_auth_token``, as B2 answers once a token's 24 hours are over: a client must
call ``b2_authorize_account`` again.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import re
import secrets
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from b2sdk._internal.exception import (
    AccessDenied,
    B2Error,
    BadJson,
    BadRequest,
    BadUploadUrl,
    ChecksumMismatch,
    Conflict,
    DuplicateBucketName,
    FileNotPresent,
    FileOrBucketNotFound,
    FileSha1Mismatch,
    InvalidAuthToken,
    MissingPart,
    NonExistentBucket,
    PartSha1Mismatch,
    ResourceNotFound,
    Unauthorized,
    UnsatisfiableRange,
    UploadTokenUsedConcurrently,
)
from b2sdk._internal.raw_simulator import BucketSimulator, RawSimulator
from b2sdk._internal.utils import b2_url_decode

RESTRICTED_CAPABILITIES = ["listBuckets", "listFiles", "readFiles", "writeFiles", "deleteFiles"]
MAX_FILE_NAME_BYTES = 1024


class ApiError(Exception):
    """An error answered as B2 does: HTTP status, B2 code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# --------------------------------------------------------------------------------------
# The simulator, with the adapter fixes a long-running server needs.
# --------------------------------------------------------------------------------------


def _millisecond_clock() -> Iterator[int]:
    """Strictly increasing upload timestamps in ms since the epoch, as B2 returns."""
    last = 0
    while True:
        last = max(int(time.time() * 1000), last + 1)
        yield last


class ServerBucket(BucketSimulator):
    # ADAPTER: the simulator numbers files per bucket counting down from 9999, so ids
    # collide between buckets (its file_id -> bucket map is global) and change width at
    # 999/99/9, which breaks its own string-sorted version order. Fixed-width ids from
    # one counter shared by all buckets keep "newest first" ordering and uniqueness.
    FIRST_FILE_NUMBER = 10**15 - 1
    FIRST_FILE_ID = str(FIRST_FILE_NUMBER)

    def __init__(self, api: ServerSimulator, *args: Any, **kwargs: Any) -> None:
        super().__init__(api, *args, **kwargs)
        # ADAPTER: the simulator's counters stop after 200 upload URLs and 4999 uploads
        # per bucket (StopIteration) and its timestamps start at 5000 ms; use unbounded
        # counters and real time.
        self.upload_url_counter = itertools.count()
        self.upload_timestamp_counter = api.timestamps

    def _next_file_id(self) -> str:
        return str(next(self.api.file_numbers))


class ServerSimulator(RawSimulator):
    BUCKET_SIMULATOR_CLASS = ServerBucket

    def __init__(self) -> None:
        super().__init__()
        self.file_numbers = itertools.count(ServerBucket.FIRST_FILE_NUMBER, -1)
        self.timestamps = _millisecond_clock()
        # Set by the HTTP layer (under the lock) to the bucket a request is about.
        self.request_bucket_id: str | None = None

    def _assert_account_auth(
        self,
        api_url: str,
        account_auth_token: str,
        account_id: str,
        capability: str,
        bucket_id: str | None = None,
        file_name: str | None = None,
    ) -> None:
        # ADAPTER: the simulator asserts (AssertionError) on unknown tokens; B2 answers
        # 401 bad_auth_token. Its expired-token code is spelled as B2 does.
        key_sim = self.auth_token_to_key.get(account_auth_token)
        if key_sim is None:
            raise InvalidAuthToken("invalid authorization token", "bad_auth_token")
        if account_auth_token in self.expired_auth_tokens:
            raise InvalidAuthToken("authorization token expired", "expired_auth_token")
        if account_id != key_sim.account_id:
            raise Unauthorized("key is not for this account", "unauthorized")
        # ADAPTER: several simulator calls (get_upload_url, start_large_file, ...) do not
        # pass the bucket to this check, so a bucket-restricted key was refused all of
        # them; the HTTP layer knows the request's bucket and supplies it.
        super()._assert_account_auth(
            self.API_URL,
            account_auth_token,
            account_id,
            capability,
            bucket_id or self.request_bucket_id,
            file_name,
        )


# --------------------------------------------------------------------------------------
# Mapping simulator exceptions to B2's HTTP errors.
# --------------------------------------------------------------------------------------


def error_for(exc: BaseException, endpoint: str) -> ApiError:
    """The HTTP status and B2 code for an exception raised by the simulator.

    Chosen so that b2sdk's ``interpret_b2_error`` maps them back to the same exception
    class, and as B2 answers them (per endpoint where B2 differs).
    """
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    downloads = endpoint in ("download", "b2_download_file_by_id")
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InvalidAuthToken):
        return ApiError(401, exc.code or "bad_auth_token", message)
    if isinstance(exc, Unauthorized):
        return ApiError(401, exc.code or "unauthorized", message)
    if isinstance(exc, NonExistentBucket):
        if downloads:
            return ApiError(404, "not_found", message)
        return ApiError(400, "bad_bucket_id", message)
    if isinstance(exc, (FileNotPresent, FileOrBucketNotFound, KeyError)):
        # The simulator raises KeyError when a file id is unknown.
        if isinstance(exc, KeyError):
            message = f"file not present: {exc.args[0] if exc.args else ''}"
        if endpoint == "b2_hide_file":
            return ApiError(400, "no_such_file", message)
        if endpoint == "b2_delete_file_version":
            return ApiError(400, "file_not_present", message)
        if downloads or endpoint == "b2_get_file_info":
            return ApiError(404, "not_found", message)
        return ApiError(400, "bad_request", message)
    if isinstance(exc, ResourceNotFound):
        return ApiError(404, "not_found", message)
    if isinstance(exc, UnsatisfiableRange):
        return ApiError(416, "range_not_satisfiable", "range not satisfiable")
    if isinstance(exc, DuplicateBucketName):
        return ApiError(400, "duplicate_bucket_name", message)
    if isinstance(exc, MissingPart):
        return ApiError(400, "missing_part", message)
    if isinstance(exc, PartSha1Mismatch):
        return ApiError(400, "part_sha1_mismatch", message)
    if isinstance(exc, UploadTokenUsedConcurrently):
        return ApiError(
            400, "auth_token_limit", f"more than one upload using auth token {exc.token}"
        )
    if isinstance(exc, (FileSha1Mismatch, ChecksumMismatch)):
        return ApiError(400, "bad_request", f"sha1 did not match data received: {message}")
    if isinstance(exc, BadJson):
        return ApiError(400, "bad_json", message)
    if isinstance(exc, BadRequest):
        return ApiError(400, exc.code or "bad_request", message)
    if isinstance(exc, BadUploadUrl):
        return ApiError(401, "bad_auth_token", message)
    if isinstance(exc, AccessDenied):
        return ApiError(403, "access_denied", message)
    if isinstance(exc, Conflict):
        return ApiError(409, "conflict", message)
    if isinstance(exc, (ValueError, AssertionError, TypeError, B2Error)):
        # The simulator validates its input with asserts and ValueError.
        return ApiError(400, "bad_request", f"{type(exc).__name__}: {message}")
    return ApiError(500, "internal_error", f"{type(exc).__name__}: {message}")


# --------------------------------------------------------------------------------------
# The server state shared by all request threads.
# --------------------------------------------------------------------------------------


class Upload:
    """An upload URL handed out to a client, and what it maps to in the simulator."""

    def __init__(self, kind: str, sim_url: str, token: str, target: str) -> None:
        self.kind = kind  # "file" or "part"
        self.sim_url = sim_url  # the simulator's own URL, which is also its upload token
        self.token = token  # the token the client must send as Authorization
        self.target = target  # bucket id (file) or large file id (part)


class B2Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        host: str,
        port: int,
        fail_every: int,
        part_sizes: tuple[int, int],
        expire_tokens_every: int = 0,
    ) -> None:
        super().__init__((host, port), Handler)
        self.base_url = f"http://{host}:{self.server_address[1]}"
        self.sim = ServerSimulator()
        self.lock = threading.Lock()  # guards the simulator and the fields below
        self.fail_every = fail_every
        self.expire_tokens_every = expire_tokens_every
        self.token_uses = 0  # API calls and downloads, for expire_tokens_every
        self.recommended_part_size, self.absolute_minimum_part_size = part_sizes
        self.request_count = 0
        self.uploads: dict[str, Upload] = {}  # by URL id
        self.uploads_in_flight: set[str] = set()  # URL ids with a request being received

    def next_request_fails(self) -> bool:
        with self.lock:
            self.request_count += 1
            return self.fail_every > 0 and self.request_count % self.fail_every == 0

    def maybe_expire(self, token: str | None) -> None:
        """Expires `token` (an account token) on every expire_tokens_every-th use."""
        if not token or self.expire_tokens_every <= 0:
            return
        with self.lock:
            self.token_uses += 1
            if (
                self.token_uses % self.expire_tokens_every == 0
                and token in self.sim.auth_token_to_key
            ):
                self.sim.expire_auth_token(token)

    def setup_account(self) -> dict[str, Any]:
        sim = self.sim
        account_id, master_key = sim.create_account()
        token = sim.authorize_account(self.base_url, account_id, master_key)["authorizationToken"]
        buckets = {}
        for name in ("arca-test", "arca-other"):
            bucket = sim.create_bucket(
                sim.API_URL,
                token,
                account_id,
                name,
                "allPrivate",
            )
            buckets[name] = bucket["bucketId"]
        key = sim.create_key(
            sim.API_URL,
            token,
            account_id,
            RESTRICTED_CAPABILITIES,
            "arca-test-key",
            None,
            [buckets["arca-test"]],
            None,
        )
        return {
            "api_url": self.base_url,
            "account_id": account_id,
            "application_key": master_key,
            "key_id": key["applicationKeyId"],
            "key": key["applicationKey"],
            "bucket": "arca-test",
            "bucket_id": buckets["arca-test"],
            "other_bucket": "arca-other",
            "other_bucket_id": buckets["arca-other"],
        }


# --------------------------------------------------------------------------------------
# Request handling.
# --------------------------------------------------------------------------------------

API_PATH = re.compile(r"^/b2api/v(?P<version>[234])/(?P<rest>.+)$")
INT_PARAMS = {"maxFileCount", "maxPartCount", "startPartNumber"}


def check_file_name(name: str) -> None:
    """B2's documented file-name rules (the simulator does not check them)."""
    if not name:
        raise ApiError(400, "bad_request", "file name is empty")
    if len(name.encode("utf-8")) > MAX_FILE_NAME_BYTES:
        raise ApiError(400, "bad_request", "file name is longer than 1024 bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in name) or "\\" in name:
        raise ApiError(400, "bad_request", "file name contains a control character or backslash")
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise ApiError(400, "bad_request", "file names cannot start or end with / or contain //")


def require(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None:
        raise ApiError(400, "bad_request", f"required field {name} is missing")
    return value


def list_start(params: dict[str, Any]) -> tuple[str | None, str | None, bool]:
    """(startFileName, prefix, empty): the simulator's listings assume startFileName
    starts with the prefix and stop at the first name outside it even before reaching
    the prefix (ADAPTER). B2 allows any start; normalise it to an equivalent one."""
    start = params.get("startFileName")
    prefix = params.get("prefix") or None
    if params.get("delimiter"):
        raise ApiError(400, "bad_request", "delimiter is not supported by the b2sdk RawSimulator")
    if prefix is None:
        return start, None, False
    if start is None or start < prefix:
        return prefix, prefix, False
    if not start.startswith(prefix):
        return start, prefix, True  # start is past every name with the prefix
    return start, prefix, False


def max_count(params: dict[str, Any], name: str, limit: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or not 1 <= value <= limit:
        raise ApiError(400, "bad_request", f"{name} must be between 1 and {limit}")
    return value


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: B2Server
    server_version = "arca-b2-simulator"
    # The upload URL id this request holds (see claim_upload), until its answer is sent.
    claimed_upload: str | None = None

    # ---- plumbing -------------------------------------------------------------------

    def do_GET(self) -> None:
        self.handle_request("GET")

    def do_POST(self) -> None:
        self.handle_request("POST")

    def do_HEAD(self) -> None:
        self.handle_request("HEAD")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

    def read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        return self.rfile.read(int(length))

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        # The upload is over once its answer goes out: a client may use the URL again
        # as soon as it reads this, possibly before this handler returns.
        self.release_upload()
        data = json.dumps(body, default=json_default).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error_json(self, error: ApiError) -> None:
        self.send_json(
            error.status, {"status": error.status, "code": error.code, "message": error.message}
        )

    def handle_request(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        endpoint = "unknown"
        upload_id: str | None = None
        try:
            match = API_PATH.match(url.path)
            rest = match.group("rest") if match else ""
            if url.path.startswith("/file/"):
                endpoint = "download"
            elif rest.startswith(("upload/", "upload_part/")):
                endpoint = rest.split("/")[0]
                upload_id = rest.rsplit("/", 1)[-1]
            elif match:
                endpoint = rest
            # Uploads: claim the URL before receiving the body, so that two requests
            # using one upload URL at once are refused as B2 does.
            if upload_id is not None:
                self.claim_upload(upload_id)
                self.claimed_upload = upload_id
            try:
                body = self.read_body()
                if self.server.next_request_fails():
                    if upload_id is not None:
                        with self.server.lock:
                            self.server.uploads.pop(upload_id, None)
                    raise ApiError(503, "service_unavailable", "injected fault (--fail-every)")
                if upload_id is None and endpoint != "b2_authorize_account":
                    self.server.maybe_expire(self.auth_header(query))
                self.route(method, endpoint, url.path, query, body, upload_id)
            finally:
                self.release_upload()
        except Exception as exc:  # every failure becomes a B2 JSON error
            error = error_for(exc, endpoint)
            if error.status >= 500 and error.code != "service_unavailable":
                traceback.print_exc()
            self.send_error_json(error)

    def release_upload(self) -> None:
        """Ends this request's claim on its upload URL, if it holds one."""
        upload_id = self.claimed_upload
        if upload_id is not None:
            self.claimed_upload = None
            with self.server.lock:
                self.server.uploads_in_flight.discard(upload_id)

    def claim_upload(self, upload_id: str) -> None:
        with self.server.lock:
            upload = self.server.uploads.get(upload_id)
            busy = upload is not None and upload_id in self.server.uploads_in_flight
            if not busy:
                self.server.uploads_in_flight.add(upload_id)
        if busy:
            # Drain the body so the connection stays usable, then refuse.
            self.read_body()
            raise ApiError(
                400, "auth_token_limit", f"more than one upload using auth token {upload.token}"
            )

    def auth_header(self, query: dict[str, str]) -> str | None:
        return self.headers.get("Authorization") or query.get("Authorization")

    # ---- routing --------------------------------------------------------------------

    def route(
        self,
        method: str,
        endpoint: str,
        path: str,
        query: dict[str, str],
        body: bytes,
        upload_id: str | None,
    ) -> None:
        if endpoint == "download":
            _, _, bucket_name, raw_name = path.split("/", 3)
            self.download(f"/file/{bucket_name}/{raw_name}", query, bucket_name=bucket_name)
            return
        if endpoint == "b2_download_file_by_id":
            file_id = require(query, "fileId")
            self.download(
                f"/b2api/v3/b2_download_file_by_id?fileId={file_id}", query, file_id=file_id
            )
            return
        if upload_id is not None:
            if method != "POST":
                raise ApiError(405, "method_not_allowed", "uploads are POST requests")
            self.upload(upload_id, body)
            return
        if endpoint == "b2_authorize_account":
            self.send_json(200, self.authorize(path))
            return
        handler = API_CALLS.get(endpoint)
        if handler is None or method == "HEAD":
            raise ApiError(400, "bad_request", f"unsupported API call: {path}")
        params: dict[str, Any]
        if method == "POST" and body.strip():
            try:
                params = json.loads(body)
            except ValueError as exc:
                raise ApiError(400, "bad_json", f"body is not JSON: {exc}") from exc
            if not isinstance(params, dict):
                raise ApiError(400, "bad_json", "body is not a JSON object")
        else:
            params = dict(query)
            for name in INT_PARAMS & params.keys():
                try:
                    params[name] = int(params[name])
                except ValueError as exc:
                    raise ApiError(400, "bad_request", f"{name} is not a number") from exc
        token = self.headers.get("Authorization")
        if not token:
            raise ApiError(401, "bad_auth_token", "missing Authorization header")
        sim = self.server.sim
        with self.server.lock:
            sim.request_bucket_id = bucket_of(sim, params)
            try:
                result = handler(self.server, token, params)
            finally:
                sim.request_bucket_id = None
        self.send_json(200, result)

    # ---- b2_authorize_account -------------------------------------------------------

    def authorize(self, path: str) -> dict[str, Any]:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Basic "):
            raise ApiError(401, "bad_auth_token", "b2_authorize_account needs HTTP Basic auth")
        try:
            key_id, _, key = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError as exc:
            raise ApiError(401, "bad_auth_token", "malformed Basic auth") from exc
        server = self.server
        with server.lock:
            result = server.sim.authorize_account(server.base_url, key_id, key)
        storage = result["apiInfo"]["storageApi"]
        allowed = storage["allowed"]
        buckets = allowed.get("buckets") or []
        # Point every URL at this server.
        storage.update(
            apiUrl=server.base_url,
            downloadUrl=server.base_url,
            s3ApiUrl=server.base_url,
            recommendedPartSize=server.recommended_part_size,
            absoluteMinimumPartSize=server.absolute_minimum_part_size,
            infoType="storageApi",
            # v3 names the (single) allowed bucket in storageApi; v4 lists them in allowed.
            bucketId=buckets[0]["id"] if buckets else None,
            bucketName=buckets[0]["name"] if buckets else None,
        )
        result["applicationKeyExpirationTimestamp"] = None
        if "/b2api/v2/" in path:
            # v2: everything flat, allowed has bucketId/bucketName.
            return {
                "accountId": result["accountId"],
                "authorizationToken": result["authorizationToken"],
                "apiUrl": storage["apiUrl"],
                "downloadUrl": storage["downloadUrl"],
                "s3ApiUrl": storage["s3ApiUrl"],
                "recommendedPartSize": storage["recommendedPartSize"],
                "absoluteMinimumPartSize": storage["absoluteMinimumPartSize"],
                "allowed": {
                    "bucketId": storage["bucketId"],
                    "bucketName": storage["bucketName"],
                    "capabilities": allowed["capabilities"],
                    "namePrefix": allowed["namePrefix"],
                },
            }
        return result

    # ---- uploads --------------------------------------------------------------------

    def upload(self, upload_id: str, body: bytes) -> None:
        server = self.server
        headers = self.headers
        with server.lock:
            upload = server.uploads.get(upload_id)
            if upload is None or headers.get("Authorization") != upload.token:
                code = "expired_auth_token" if upload is None else "bad_auth_token"
                raise ApiError(401, code, "upload URL or its authorization token is not valid")
        if headers.get("Content-Length") is None:
            raise ApiError(411, "bad_request", "Content-Length is required")
        sha1 = headers.get("X-Bz-Content-Sha1")
        if sha1 is None:
            raise ApiError(400, "bad_request", "X-Bz-Content-Sha1 is required")
        sim = server.sim
        if upload.kind == "part":
            part_number = int(headers.get("X-Bz-Part-Number") or 0)
            if not 1 <= part_number <= sim.MAX_PART_ID:
                raise ApiError(400, "bad_request", "Part number must be in range 1 - 10000")
            with server.lock:
                sim.request_bucket_id = sim.file_id_to_bucket_id.get(upload.target)
                try:
                    result = sim.upload_part(
                        upload.sim_url,
                        upload.sim_url,
                        part_number,
                        len(body),
                        sha1,
                        BytesStream(body),
                    )
                finally:
                    sim.request_bucket_id = None
            self.send_json(200, result)
            return
        raw_name = headers.get("X-Bz-File-Name")
        if raw_name is None:
            raise ApiError(400, "bad_request", "X-Bz-File-Name is required")
        file_name = b2_url_decode(raw_name)
        check_file_name(file_name)
        content_type = headers.get("Content-Type")
        if content_type is None:
            raise ApiError(400, "bad_request", "Content-Type is required")
        file_info = {
            name[len("X-Bz-Info-") :]: b2_url_decode(value)
            for name, value in headers.items()
            if name.lower().startswith("x-bz-info-")
        }
        with server.lock:
            sim.request_bucket_id = upload.target
            try:
                result = sim.upload_file(
                    upload.sim_url,
                    upload.sim_url,
                    file_name,
                    len(body),
                    content_type,
                    sha1,
                    file_info,
                    BytesStream(body),
                )
            finally:
                sim.request_bucket_id = None
        self.send_json(200, result)

    # ---- downloads ------------------------------------------------------------------

    def download(
        self,
        sim_path: str,
        query: dict[str, str],
        bucket_name: str | None = None,
        file_id: str | None = None,
    ) -> None:
        server = self.server
        sim = server.sim
        url = sim.DOWNLOAD_URL + sim_path
        token = self.auth_header(query)
        with server.lock:
            if file_id is not None:
                if file_id not in sim.file_id_to_bucket_id:
                    raise ApiError(404, "not_found", f"file not present: {file_id}")
                bucket = sim._get_bucket_by_id(sim.file_id_to_bucket_id[file_id])
                file_name = bucket.file_id_to_file[file_id].name
            else:
                bucket = sim._get_bucket_by_name(bucket_name)
                file_name = b2_url_decode(sim_path.split("/", 3)[3])
            # The simulator does not check download authorization ("TODO" in its
            # source); B2 requires a token with readFiles for private buckets.
            if bucket.bucket_type != "allPublic":
                if not token:
                    raise ApiError(401, "bad_auth_token", "missing Authorization")
                sim._assert_account_auth(
                    sim.API_URL, token, bucket.account_id, "readFiles", bucket.bucket_id, file_name
                )
            with sim.download_file_from_url(token, url) as response:
                size = len(response.data_bytes)
            range_ = parse_range(self.headers.get("Range"), size)
            with sim.download_file_from_url(token, url, range_) as response:
                data = bytes(response.data_bytes)
                headers = dict(response.headers)
        self.send_response(206 if range_ is not None else 200)
        for name, value in headers.items():
            if name.lower() != "content-length" and value is not None:
                self.send_header(name, str(value))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def json_default(value: Any) -> Any:
    """The simulator's dicts hold sets (bucket options) and enums."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"cannot serialise {type(value).__name__}")


class BytesStream:
    """A seekable stream over bytes, as the simulator reads uploads twice."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def seek(self, position: int) -> None:
        self.position = position

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.position + size
        chunk = self.data[self.position : end]
        self.position += len(chunk)
        return chunk


RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """An inclusive (first, last) byte range, or None for the whole file.

    A malformed or multi-range header is ignored (as HTTP allows); a range that starts
    past the end is 416 range_not_satisfiable; the end is clamped to the file."""
    if header is None:
        return None
    match = RANGE.match(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    if not match.group(1):  # suffix range: the last N bytes
        length = int(match.group(2))
        if length == 0 or size == 0:
            raise UnsatisfiableRange()
        return max(size - length, 0), size - 1
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else size - 1
    if first >= size or last < first:
        raise UnsatisfiableRange()
    return first, min(last, size - 1)


# --------------------------------------------------------------------------------------
# The API calls: each calls the simulator method of the same name (under the lock).
# --------------------------------------------------------------------------------------

Call = Callable[[B2Server, str, dict[str, Any]], Any]


def bucket_of(sim: ServerSimulator, params: dict[str, Any]) -> str | None:
    """The bucket a request is about, for bucket-restricted keys."""
    if params.get("bucketId"):
        return params["bucketId"]
    if params.get("fileId"):
        return sim.file_id_to_bucket_id.get(params["fileId"])
    return None


def register_upload(
    server: B2Server, kind: str, result: dict[str, Any], target: str
) -> dict[str, Any]:
    upload_id = secrets.token_hex(12)
    token = f"upload_{kind}_{secrets.token_hex(16)}"
    server.uploads[upload_id] = Upload(kind, result["uploadUrl"], token, target)
    path = "upload" if kind == "file" else "upload_part"
    return {
        **({"bucketId": result["bucketId"]} if kind == "file" else {"fileId": target}),
        "uploadUrl": f"{server.base_url}/b2api/v3/{path}/{target}/{upload_id}",
        "authorizationToken": token,
    }


def call_list_buckets(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    result = server.sim.list_buckets(
        server.sim.API_URL, token, require(p, "accountId"), p.get("bucketId"), p.get("bucketName")
    )
    types = p.get("bucketTypes")
    if types and "all" not in types:
        result["buckets"] = [b for b in result["buckets"] if b["bucketType"] in types]
    return result


def call_get_upload_url(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    bucket_id = require(p, "bucketId")
    result = server.sim.get_upload_url(server.sim.API_URL, token, bucket_id)
    return register_upload(server, "file", result, bucket_id)


def call_get_upload_part_url(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    file_id = require(p, "fileId")
    result = server.sim.get_upload_part_url(server.sim.API_URL, token, file_id)
    return register_upload(server, "part", result, file_id)


def call_list_file_names(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    start, prefix, empty = list_start(p)
    count = max_count(p, "maxFileCount", 10000)
    bucket_id = require(p, "bucketId")
    result = server.sim.list_file_names(server.sim.API_URL, token, bucket_id, start, count, prefix)
    return {"files": [], "nextFileName": None} if empty else result


def call_list_file_versions(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    start, prefix, empty = list_start(p)
    start_id = p.get("startFileId") if start == p.get("startFileName") else None
    count = max_count(p, "maxFileCount", 10000)
    bucket_id = require(p, "bucketId")
    result = server.sim.list_file_versions(
        server.sim.API_URL, token, bucket_id, start, start_id, count, prefix
    )
    return {"files": [], "nextFileName": None, "nextFileId": None} if empty else result


def call_get_file_info(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    sim = server.sim
    file_id = require(p, "fileId")
    bucket = sim._get_bucket_by_id(sim.file_id_to_bucket_id[file_id])
    # The simulator does not check this call's capability; B2 requires readFiles.
    sim._assert_account_auth(sim.API_URL, token, bucket.account_id, "readFiles", bucket.bucket_id)
    return sim.get_file_info_by_id(sim.API_URL, token, file_id)


def call_delete_file_version(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    return server.sim.delete_file_version(
        server.sim.API_URL,
        token,
        require(p, "fileId"),
        require(p, "fileName"),
        bool(p.get("bypassGovernance", False)),
    )


def call_hide_file(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    file_name = require(p, "fileName")
    check_file_name(file_name)
    return server.sim.hide_file(server.sim.API_URL, token, require(p, "bucketId"), file_name)


def call_start_large_file(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    file_name = require(p, "fileName")
    check_file_name(file_name)
    return server.sim.start_large_file(
        server.sim.API_URL,
        token,
        require(p, "bucketId"),
        file_name,
        require(p, "contentType"),
        p.get("fileInfo") or {},
    )


def call_finish_large_file(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    return server.sim.finish_large_file(
        server.sim.API_URL, token, require(p, "fileId"), require(p, "partSha1Array")
    )


def call_cancel_large_file(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    return server.sim.cancel_large_file(server.sim.API_URL, token, require(p, "fileId"))


def call_list_parts(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    return server.sim.list_parts(
        server.sim.API_URL,
        token,
        require(p, "fileId"),
        p.get("startPartNumber"),
        max_count(p, "maxPartCount", 1000),
    )


def call_list_unfinished_large_files(server: B2Server, token: str, p: dict[str, Any]) -> Any:
    return server.sim.list_unfinished_large_files(
        server.sim.API_URL,
        token,
        require(p, "bucketId"),
        p.get("startFileId"),
        max_count(p, "maxFileCount", 100),
        p.get("namePrefix"),
    )


API_CALLS: dict[str, Call] = {
    "b2_list_buckets": call_list_buckets,
    "b2_get_upload_url": call_get_upload_url,
    "b2_get_upload_part_url": call_get_upload_part_url,
    "b2_list_file_names": call_list_file_names,
    "b2_list_file_versions": call_list_file_versions,
    "b2_get_file_info": call_get_file_info,
    "b2_delete_file_version": call_delete_file_version,
    "b2_hide_file": call_hide_file,
    "b2_start_large_file": call_start_large_file,
    "b2_finish_large_file": call_finish_large_file,
    "b2_cancel_large_file": call_cancel_large_file,
    "b2_list_parts": call_list_parts,
    "b2_list_unfinished_large_files": call_list_unfinished_large_files,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("ARCA_TEST_B2_PORT", 9102)))
    parser.add_argument("--credentials-file", help="write the account's credentials here as JSON")
    parser.add_argument(
        "--fail-every",
        type=int,
        default=int(os.environ.get("B2_SERVER_FAIL_EVERY", 0)),
        help="answer every Nth request with 503 service_unavailable (0: never)",
    )
    parser.add_argument(
        "--recommended-part-size",
        type=int,
        default=RawSimulator.MIN_PART_SIZE,
        help="recommendedPartSize in b2_authorize_account (default: the simulator's)",
    )
    parser.add_argument(
        "--absolute-minimum-part-size",
        type=int,
        default=RawSimulator.MIN_PART_SIZE,
        help="absoluteMinimumPartSize in b2_authorize_account (not enforced by the simulator)",
    )
    parser.add_argument(
        "--expire-tokens-every",
        type=int,
        default=0,
        help="expire the account token used by every Nth API call or download (0: never)",
    )
    args = parser.parse_args()

    server = B2Server(
        args.host,
        args.port,
        args.fail_every,
        (args.recommended_part_size, args.absolute_minimum_part_size),
        args.expire_tokens_every,
    )
    credentials = server.setup_account()
    text = json.dumps(credentials, indent=2)
    if args.credentials_file:
        temporary = f"{args.credentials_file}.tmp"
        with open(temporary, "w") as f:
            f.write(text + "\n")
        os.replace(temporary, args.credentials_file)
    print(f"B2 simulator listening on {server.base_url}\n{text}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
