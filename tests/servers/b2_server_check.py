#!/usr/bin/env python3
"""Checks tests/servers/b2_server.py over real HTTP, with b2sdk's own client.

Usage (from the venv that has b2sdk, e.g. after scripts/test-servers.sh start):

    . "$(scripts/test-servers.sh env)"
    python tests/servers/b2_server_check.py            # the running server
    python tests/servers/b2_server_check.py --faults   # also a private one with --fail-every

The running server is found through ARCA_TEST_B2_API_URL, ARCA_TEST_B2_KEY_ID,
ARCA_TEST_B2_KEY, ARCA_TEST_B2_ACCOUNT_ID, ARCA_TEST_B2_APPLICATION_KEY and
ARCA_TEST_B2_BUCKET, or --credentials-file (the JSON the server writes).
Exits non-zero on the first failed check.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import requests
from b2sdk.v2 import B2Api, InMemoryAccountInfo
from b2sdk.v2.exception import FileNotPresent

HERE = os.path.dirname(os.path.abspath(__file__))


class Credentials:
    def __init__(self, data: dict[str, Any]) -> None:
        self.api_url: str = data["api_url"]
        self.account_id: str = data["account_id"]
        self.application_key: str = data["application_key"]
        self.key_id: str = data["key_id"]
        self.key: str = data["key"]
        self.bucket: str = data["bucket"]
        self.other_bucket: str = data.get("other_bucket", "arca-other")


def credentials_from_env() -> Credentials:
    env = os.environ
    return Credentials(
        {
            "api_url": env["ARCA_TEST_B2_API_URL"],
            "account_id": env["ARCA_TEST_B2_ACCOUNT_ID"],
            "application_key": env["ARCA_TEST_B2_APPLICATION_KEY"],
            "key_id": env["ARCA_TEST_B2_KEY_ID"],
            "key": env["ARCA_TEST_B2_KEY"],
            "bucket": env.get("ARCA_TEST_B2_BUCKET", "arca-test"),
        }
    )


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# --------------------------------------------------------------------------------------
# With b2sdk's high-level client.
# --------------------------------------------------------------------------------------


def check_with_b2sdk(creds: Credentials) -> None:
    api = B2Api(InMemoryAccountInfo())
    # b2sdk takes a realm name or a realm URL.
    api.authorize_account(creds.api_url, creds.key_id, creds.key)
    check(
        api.account_info.get_api_url() == creds.api_url, "b2sdk: authorized with the restricted key"
    )
    bucket = api.get_bucket_by_name(creds.bucket)
    prefix = f"check-{uuid.uuid4().hex[:8]}/"

    small = b"small file " * 9  # under the part size: b2_upload_file
    small_version = bucket.upload_bytes(small, prefix + "small.txt")
    check(small_version.content_sha1 == sha1(small), "b2sdk: small upload (b2_upload_file)")

    part_size = api.account_info.get_recommended_part_size()
    large = os.urandom(part_size * 3 + 17)  # several parts: the large-file API
    large_version = bucket.upload_bytes(large, prefix + "dir/large.bin")
    info = api.get_file_info(large_version.id_)
    check(
        info.content_sha1 in (None, "none") and info.size == len(large),
        f"b2sdk: large upload of {len(large)} bytes in parts of {part_size} "
        "(b2_start_large_file, b2_upload_part, b2_finish_large_file)",
    )

    names = [fv.file_name for fv, _ in bucket.ls(prefix, recursive=True)]
    check(names == [prefix + "dir/large.bin", prefix + "small.txt"], f"b2sdk: ls lists {names}")

    out = io.BytesIO()
    bucket.download_file_by_name(prefix + "dir/large.bin", range_=(100, 399)).save(out)
    check(out.getvalue() == large[100:400], "b2sdk: ranged download by name")
    out = io.BytesIO()
    bucket.download_file_by_id(large_version.id_).save(out)
    check(out.getvalue() == large, "b2sdk: whole download by id")

    second = b"second version"
    bucket.upload_bytes(second, prefix + "small.txt")
    out = io.BytesIO()
    bucket.download_file_by_name(prefix + "small.txt").save(out)
    check(out.getvalue() == second, "b2sdk: a new version is the one downloaded by name")
    bucket.hide_file(prefix + "small.txt")
    names = [fv.file_name for fv, _ in bucket.ls(prefix, recursive=True)]
    check(names == [prefix + "dir/large.bin"], "b2sdk: a hidden file is not listed")
    versions = list(bucket.list_file_versions(prefix + "small.txt"))
    check(
        [v.action for v in versions] == ["hide", "upload", "upload"],
        "b2sdk: list_file_versions shows hide marker and both versions, newest first",
    )
    try:
        bucket.download_file_by_name(prefix + "small.txt").save(io.BytesIO())
        check(False, "b2sdk: a hidden file cannot be downloaded by name")
    except FileNotPresent:
        check(True, "b2sdk: a hidden file cannot be downloaded by name (FileNotPresent)")

    for version, _ in bucket.ls(prefix, recursive=True, latest_only=False):
        bucket.delete_file_version(version.id_, version.file_name)
    left = list(bucket.ls(prefix, recursive=True, latest_only=False))
    check(left == [], "b2sdk: all versions deleted")


# --------------------------------------------------------------------------------------
# Raw HTTP: what b2sdk's client does not show (error codes, pagination, ranges).
# --------------------------------------------------------------------------------------


class Raw:
    def __init__(self, api_url: str, key_id: str, key: str, version: str = "v3") -> None:
        self.version = version
        response = requests.get(
            f"{api_url}/b2api/{version}/b2_authorize_account", auth=(key_id, key), timeout=10
        )
        response.raise_for_status()
        self.auth = response.json()
        self.token: str = self.auth["authorizationToken"]
        storage = self.auth["apiInfo"]["storageApi"] if version != "v2" else self.auth
        self.api_url: str = storage["apiUrl"]
        self.download_url: str = storage["downloadUrl"]

    def call(self, name: str, token: str | None = None, **params: Any) -> requests.Response:
        return requests.post(
            f"{self.api_url}/b2api/{self.version}/{name}",
            headers={"Authorization": token or self.token},
            json=params,
            timeout=10,
        )

    def ok(self, name: str, **params: Any) -> dict[str, Any]:
        response = self.call(name, **params)
        if response.status_code != 200:
            raise SystemExit(f"FAILED: {name} {params}: {response.status_code} {response.text}")
        return response.json()

    def upload(
        self, bucket_id: str, name: str, data: bytes, digest: str | None = None
    ) -> requests.Response:
        target = self.ok("b2_get_upload_url", bucketId=bucket_id)
        return self.upload_to(target, name, data, digest)

    @staticmethod
    def upload_to(
        target: dict[str, Any], name: str, data: bytes, digest: str | None = None
    ) -> requests.Response:
        return requests.post(
            target["uploadUrl"],
            headers={
                "Authorization": target["authorizationToken"],
                "X-Bz-File-Name": requests.utils.quote(name),
                "Content-Type": "application/octet-stream",
                "X-Bz-Content-Sha1": digest or sha1(data),
                "X-Bz-Info-src_last_modified_millis": "1700000000000",
            },
            data=data,
            timeout=10,
        )


def error_of(response: requests.Response) -> tuple[int, str]:
    try:
        body = response.json()
    except ValueError:
        return response.status_code, f"(not JSON: {response.text[:80]!r})"
    return response.status_code, f"{body.get('status')}:{body.get('code')}"


def check_raw(creds: Credentials) -> None:
    raw = Raw(creds.api_url, creds.key_id, creds.key)
    bucket_id = raw.auth["apiInfo"]["storageApi"]["bucketId"]
    check(bool(bucket_id), "raw: v3 authorize names the restricted key's bucket")
    v2 = Raw(creds.api_url, creds.key_id, creds.key, "v2")
    check(v2.auth["allowed"]["bucketName"] == creds.bucket, "raw: v2 authorize (flat format)")
    prefix = f"raw-{uuid.uuid4().hex[:8]}/"

    # A name sorting before the prefix must not hide the prefix's files.
    check(raw.upload(bucket_id, "raw-0-before", b"x").status_code == 200, "raw: upload")
    names = [f"{prefix}{i:02d} space+%é" for i in range(7)]
    for name in names:
        response = raw.upload(bucket_id, name, name.encode())
        check(response.status_code == 200, f"raw: upload {name!r}")
    check(response.json()["fileName"] == names[-1], "raw: percent-encoded X-Bz-File-Name decoded")

    # Pagination.
    seen: list[str] = []
    start: str | None = None
    pages = 0
    while True:
        page = raw.ok(
            "b2_list_file_names",
            bucketId=bucket_id,
            prefix=prefix,
            maxFileCount=3,
            startFileName=start,
        )
        seen += [f["fileName"] for f in page["files"]]
        pages += 1
        start = page["nextFileName"]
        if start is None:
            break
    check(seen == names and pages == 3, f"raw: b2_list_file_names paginates ({pages} pages of 3)")
    get = requests.get(
        f"{raw.api_url}/b2api/v3/b2_list_file_names",
        params={"bucketId": bucket_id, "prefix": prefix, "maxFileCount": "2"},
        headers={"Authorization": raw.token},
        timeout=10,
    )
    check(len(get.json()["files"]) == 2, "raw: GET with query parameters")
    seen, start_name, start_id = [], None, None
    while True:
        page = raw.ok(
            "b2_list_file_versions",
            bucketId=bucket_id,
            prefix=prefix,
            maxFileCount=2,
            startFileName=start_name,
            startFileId=start_id,
        )
        seen += [f["fileName"] for f in page["files"]]
        start_name, start_id = page["nextFileName"], page["nextFileId"]
        if start_name is None:
            break
    check(seen == names, "raw: b2_list_file_versions paginates")

    # Downloads and ranges.
    url = f"{raw.download_url}/file/{creds.bucket}/{requests.utils.quote(names[1])}"
    auth = {"Authorization": raw.token}
    body = names[1].encode()
    whole = requests.get(url, headers=auth, timeout=10)
    check(whole.status_code == 200 and whole.content == body, "raw: download by name")
    part = requests.get(url, headers={**auth, "Range": "bytes=2-5"}, timeout=10)
    check(
        part.status_code == 206
        and part.content == body[2:6]
        and part.headers["Content-Range"] == f"bytes 2-5/{len(body)}",
        f"raw: Range bytes=2-5 -> 206 {part.headers.get('Content-Range')}",
    )
    past = requests.get(url, headers={**auth, "Range": f"bytes={len(body)}-"}, timeout=10)
    check(
        error_of(past) == (416, "416:range_not_satisfiable"),
        f"raw: range past the end -> {error_of(past)}",
    )
    tail = requests.get(url, headers={**auth, "Range": "bytes=-3"}, timeout=10)
    check(tail.status_code == 206 and tail.content == body[-3:], "raw: suffix range bytes=-3")
    over = requests.get(url, headers={**auth, "Range": "bytes=3-999999"}, timeout=10)
    check(
        over.status_code == 206 and over.content == body[3:], "raw: range end clamped to the file"
    )
    head = requests.head(url, headers=auth, timeout=10)
    check(head.status_code == 200 and head.headers["Content-Length"] == str(len(body)), "raw: HEAD")
    file_id = whole.headers["X-Bz-File-Id"]
    by_id = requests.get(
        f"{raw.download_url}/b2api/v3/b2_download_file_by_id",
        params={"fileId": file_id},
        headers={**auth, "Range": "bytes=0-0"},
        timeout=10,
    )
    check(by_id.status_code == 206 and by_id.content == body[:1], "raw: download by id with range")
    anonymous = requests.get(url, timeout=10)
    check(
        error_of(anonymous)[0] == 401,
        f"raw: private download without token -> {error_of(anonymous)}",
    )
    missing = requests.get(url + "-missing", headers=auth, timeout=10)
    check(error_of(missing) == (404, "404:not_found"), f"raw: missing file -> {error_of(missing)}")

    # Errors.
    bad = raw.call("b2_list_file_names", token="nonsense", bucketId=bucket_id)
    check(error_of(bad) == (401, "401:bad_auth_token"), f"raw: bad token -> {error_of(bad)}")
    info = raw.call("b2_get_file_info", fileId="123")
    check(error_of(info) == (404, "404:not_found"), f"raw: unknown fileId -> {error_of(info)}")
    other = raw.call(
        "b2_list_buckets", accountId=raw.auth["accountId"], bucketName=creds.other_bucket
    )
    check(error_of(other)[0] == 401, f"raw: restricted key, other bucket -> {error_of(other)}")
    everything = raw.call("b2_list_buckets", accountId=raw.auth["accountId"])
    check(
        error_of(everything)[0] == 401,
        "raw: restricted key must name its bucket in b2_list_buckets",
    )
    mine = raw.ok("b2_list_buckets", accountId=raw.auth["accountId"], bucketId=bucket_id)
    check(
        [b["bucketName"] for b in mine["buckets"]] == [creds.bucket],
        "raw: b2_list_buckets own bucket",
    )
    master = Raw(creds.api_url, creds.account_id, creds.application_key)
    all_buckets = master.ok("b2_list_buckets", accountId=master.auth["accountId"])
    check(
        sorted(b["bucketName"] for b in all_buckets["buckets"])
        == sorted([creds.bucket, creds.other_bucket]),
        "raw: master key lists both buckets",
    )
    wrong = raw.upload(bucket_id, prefix + "bad-sha1", b"data", digest="0" * 40)
    check(error_of(wrong) == (400, "400:bad_request"), f"raw: wrong sha1 -> {error_of(wrong)}")
    bad_name = raw.upload(bucket_id, prefix + "a//b", b"data")
    check(
        error_of(bad_name) == (400, "400:bad_request"),
        f"raw: file name with // -> {error_of(bad_name)}",
    )
    gone = raw.call("b2_delete_file_version", fileId=file_id, fileName="not-the-name")
    check(
        error_of(gone) == (400, "400:file_not_present"),
        f"raw: delete wrong name -> {error_of(gone)}",
    )

    # One upload URL serves several uploads in a row.
    target = raw.ok("b2_get_upload_url", bucketId=bucket_id)
    for i in range(3):
        response = Raw.upload_to(target, f"{prefix}reuse-{i}", b"r")
        check(response.status_code == 200, f"raw: upload URL reused ({i})")

    # Large file by hand, then cancel one.
    start = raw.ok(
        "b2_start_large_file",
        bucketId=bucket_id,
        fileName=prefix + "large",
        contentType="b2/x-auto",
    )
    parts = [os.urandom(300), os.urandom(250)]
    for number, data in enumerate(parts, 1):
        url_part = raw.ok("b2_get_upload_part_url", fileId=start["fileId"])
        response = requests.post(
            url_part["uploadUrl"],
            headers={
                "Authorization": url_part["authorizationToken"],
                "X-Bz-Part-Number": str(number),
                "X-Bz-Content-Sha1": sha1(data),
            },
            data=data,
            timeout=10,
        )
        check(response.status_code == 200, f"raw: upload part {number}")
    finished = raw.ok(
        "b2_finish_large_file", fileId=start["fileId"], partSha1Array=[sha1(p) for p in parts]
    )
    check(finished["contentLength"] == 550, "raw: b2_finish_large_file")
    doomed = raw.ok(
        "b2_start_large_file",
        bucketId=bucket_id,
        fileName=prefix + "doomed",
        contentType="b2/x-auto",
    )
    unfinished = raw.ok("b2_list_unfinished_large_files", bucketId=bucket_id)
    check(
        doomed["fileId"] in [f["fileId"] for f in unfinished["files"]],
        "raw: b2_list_unfinished_large_files",
    )
    raw.ok("b2_cancel_large_file", fileId=doomed["fileId"])

    # Clean up everything this check made.
    for file in raw.ok("b2_list_file_versions", bucketId=bucket_id, maxFileCount=10000)["files"]:
        if file["fileName"].startswith((prefix, "raw-0-before")):
            raw.ok("b2_delete_file_version", fileId=file["fileId"], fileName=file["fileName"])


# --------------------------------------------------------------------------------------
# Faults: a private server instance with --fail-every.
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_faults() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        creds_file = os.path.join(tmp, "credentials.json")
        server = subprocess.Popen(
            [
                sys.executable,
                os.path.join(HERE, "b2_server.py"),
                "--port",
                str(port),
                "--credentials-file",
                creds_file,
                "--fail-every",
                "4",
            ],
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 20
            while not os.path.exists(creds_file):
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("FAILED: the fault-injecting server did not start")
                time.sleep(0.1)
            with open(creds_file) as f:
                creds = Credentials(json.load(f))
            # Requests 1-3 succeed, the 4th gets 503: an upload whose URL then is dead.
            raw = Raw(creds.api_url, creds.key_id, creds.key)  # request 1
            bucket_id = raw.auth["apiInfo"]["storageApi"]["bucketId"]
            target = raw.ok("b2_get_upload_url", bucketId=bucket_id)  # 2
            check(Raw.upload_to(target, "f/1", b"1").status_code == 200, "faults: request 3 passes")
            failed = Raw.upload_to(target, "f/2", b"2")  # 4
            check(
                error_of(failed) == (503, "503:service_unavailable"),
                f"faults: request 4 -> {error_of(failed)}",
            )
            again = Raw.upload_to(target, "f/2", b"2")  # 5
            check(
                error_of(again) == (401, "401:expired_auth_token"),
                f"faults: upload URL that got a 503 is dead afterwards -> {error_of(again)}",
            )
            print("faults: b2sdk's client retries through every 4th request failing:")
            check_with_b2sdk(creds)
        finally:
            server.terminate()
            server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--credentials-file", help="the JSON written by b2_server.py")
    parser.add_argument("--faults", action="store_true", help="also check --fail-every")
    args = parser.parse_args()
    if args.credentials_file:
        with open(args.credentials_file) as f:
            creds = Credentials(json.load(f))
    else:
        creds = credentials_from_env()
    started = time.time()
    check_with_b2sdk(creds)
    check_raw(creds)
    if args.faults:
        check_faults()
    print(f"b2 server check: all passed in {time.time() - started:.1f}s")


if __name__ == "__main__":
    main()
