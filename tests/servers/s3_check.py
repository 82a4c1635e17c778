#!/usr/bin/env python3
"""Checks an S3 test server (moto_server or s3s-fs) with boto3, and probes its features.

    python tests/servers/s3_check.py --endpoint URL --access-key A --secret-key S [--signed] [--features]

Without --features: creates a bucket, puts, gets and deletes an object, deletes the
bucket; with --signed also checks that a request signed with a wrong secret is refused
with 403 (for servers that verify SigV4, i.e. s3s-fs; moto accepts any signature).
With --features: also probes and prints what the server supports (conditional PUT
If-None-Match: *, multipart upload, ListObjectsV2 pagination, Range GET), without
failing when a feature is missing. Exits non-zero when a basic check fails.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any, Callable

import boto3
from botocore.client import Config
from botocore.exceptions import ClientError


def client(endpoint: str, access_key: str, secret_key: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            # Newer botocore adds CRC checksums to every PUT; keep requests plain so
            # that a server without them is probed on the feature itself.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def status_of(error: ClientError) -> str:
    meta = error.response.get("ResponseMetadata", {})
    return f"{meta.get('HTTPStatusCode')} {error.response.get('Error', {}).get('Code')}"


def basic(s3: Any, bucket: str) -> None:
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="check/object", Body=b"hello")
    body = s3.get_object(Bucket=bucket, Key="check/object")["Body"].read()
    if body != b"hello":
        raise SystemExit(f"FAILED: get returned {body!r}")
    s3.delete_object(Bucket=bucket, Key="check/object")
    s3.delete_bucket(Bucket=bucket)
    print("ok: create bucket, put, get, delete object, delete bucket")


def wrong_signature(endpoint: str, access_key: str, bucket: str) -> None:
    bad = client(endpoint, access_key, "wrong-secret")
    try:
        bad.list_objects_v2(Bucket=bucket)
    except ClientError as error:
        if error.response["ResponseMetadata"]["HTTPStatusCode"] == 403:
            print(f"ok: wrong secret refused ({status_of(error)})")
            return
        raise SystemExit(f"FAILED: wrong secret gave {status_of(error)}, not 403") from error
    raise SystemExit("FAILED: a request signed with a wrong secret was accepted")


def probe(name: str, fn: Callable[[], str]) -> tuple[str, str]:
    try:
        return name, fn()
    except ClientError as error:
        return name, f"NO ({status_of(error)})"
    except Exception as error:  # a feature probe never fails the check
        return name, f"NO ({type(error).__name__}: {error})"


def features(s3: Any, bucket: str) -> list[tuple[str, str]]:
    s3.create_bucket(Bucket=bucket)
    results = []

    def conditional_put() -> str:
        s3.put_object(Bucket=bucket, Key="cond", Body=b"1", IfNoneMatch="*")
        try:
            s3.put_object(Bucket=bucket, Key="cond", Body=b"2", IfNoneMatch="*")
        except ClientError as error:
            kept = s3.get_object(Bucket=bucket, Key="cond")["Body"].read()
            return f"yes (second PUT refused: {status_of(error)}; object kept {kept!r})"
        kept = s3.get_object(Bucket=bucket, Key="cond")["Body"].read()
        return f"NO: second PUT with If-None-Match: * succeeded (object now {kept!r})"

    def multipart() -> str:
        part = b"a" * (5 * 1024 * 1024)
        upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")
        etags = []
        for number, data in enumerate([part, b"tail"], 1):
            response = s3.upload_part(
                Bucket=bucket, Key="mp", PartNumber=number, UploadId=upload["UploadId"], Body=data
            )
            etags.append({"PartNumber": number, "ETag": response["ETag"]})
        try:
            listed = f"saw {len(s3.list_multipart_uploads(Bucket=bucket).get('Uploads', []))}"
        except ClientError as error:
            listed = f"NOT supported: {status_of(error)}"
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload={"Parts": etags}
        )
        size = s3.head_object(Bucket=bucket, Key="mp")["ContentLength"]
        aborted = s3.create_multipart_upload(Bucket=bucket, Key="mp2")
        s3.abort_multipart_upload(Bucket=bucket, Key="mp2", UploadId=aborted["UploadId"])
        ok = size == len(part) + 4
        return (
            f"{'yes' if ok else 'NO'} (create/upload_part/complete -> {size} bytes; "
            f"list_multipart_uploads {listed}; abort ok)"
        )

    def pagination() -> str:
        for i in range(5):
            s3.put_object(Bucket=bucket, Key=f"page/{i}", Body=b"x")
        keys: list[str] = []
        pages = 0
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": "page/", "MaxKeys": 2}
        while True:
            response = s3.list_objects_v2(**kwargs)
            pages += 1
            keys += [o["Key"] for o in response.get("Contents", [])]
            if not response.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = response["NextContinuationToken"]
        after = s3.list_objects_v2(Bucket=bucket, Prefix="page/", StartAfter="page/2")
        start_after = [o["Key"] for o in after.get("Contents", [])]
        delimited = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
        prefixes = [p["Prefix"] for p in delimited.get("CommonPrefixes", [])]
        ok = keys == [f"page/{i}" for i in range(5)] and pages == 3
        return (
            f"{'yes' if ok else 'NO'} (MaxKeys=2: {pages} pages, {len(keys)} keys; "
            f"StartAfter -> {start_after}; Delimiter=/ -> CommonPrefixes {prefixes})"
        )

    def ranges() -> str:
        s3.put_object(Bucket=bucket, Key="range", Body=b"0123456789")
        part = s3.get_object(Bucket=bucket, Key="range", Range="bytes=2-5")
        body = part["Body"].read()
        suffix = s3.get_object(Bucket=bucket, Key="range", Range="bytes=-3")["Body"].read()
        try:
            s3.get_object(Bucket=bucket, Key="range", Range="bytes=20-30")
            past = "200/206 (no 416)"
        except ClientError as error:
            past = status_of(error)
        ok = body == b"2345" and suffix == b"789"
        return (
            f"{'yes' if ok else 'NO'} (bytes=2-5 -> {part['ResponseMetadata']['HTTPStatusCode']} "
            f"{body!r} Content-Range {part.get('ContentRange')}; bytes=-3 -> {suffix!r}; "
            f"past the end -> {past})"
        )

    def delete_objects() -> str:
        s3.put_object(Bucket=bucket, Key="del/a", Body=b"x")
        response = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": "del/a"}, {"Key": "del/none"}]}
        )
        return (
            f"yes ({len(response.get('Deleted', []))} deleted, errors {response.get('Errors', [])})"
        )

    def missing_key() -> str:
        try:
            s3.get_object(Bucket=bucket, Key="no/such/key")
        except ClientError as error:
            return status_of(error)
        return "NO: missing key returned 200"

    for name, fn in [
        ("conditional PUT If-None-Match: *", conditional_put),
        ("multipart upload", multipart),
        ("ListObjectsV2 pagination", pagination),
        ("Range GET", ranges),
        ("DeleteObjects (batch)", delete_objects),
        ("GET of a missing key", missing_key),
    ]:
        results.append(probe(name, fn))

    # Leave nothing behind.
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    try:
        for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    except ClientError:
        pass  # s3s-fs does not implement ListMultipartUploads
    s3.delete_bucket(Bucket=bucket)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--signed", action="store_true", help="the server verifies signatures")
    parser.add_argument("--features", action="store_true", help="probe and print features")
    args = parser.parse_args()

    s3 = client(args.endpoint, args.access_key, args.secret_key)
    bucket = f"check-{uuid.uuid4().hex[:12]}"
    basic(s3, bucket)
    if args.signed:
        s3.create_bucket(Bucket=bucket)
        try:
            wrong_signature(args.endpoint, args.access_key, bucket)
        finally:
            s3.delete_bucket(Bucket=bucket)
    if args.features:
        for name, result in features(s3, bucket + "-f"):
            print(f"feature: {name}: {result}")


if __name__ == "__main__":
    main()
