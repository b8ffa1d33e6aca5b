"""The S3 object store (AWS, MinIO, SeaweedFS ...) through boto3, with presigned URLs."""
from __future__ import annotations

from typing import Iterator
from urllib.parse import quote, urlsplit

import boto3
from botocore.client import Config
from botocore.exceptions import BotoCoreError, ClientError

from .base import CHUNK, ObjectInfo, ObjectStore, StoreError


class S3ObjectStore(ObjectStore):
    """`endpoint_url` is where the service reaches S3 itself; `public_endpoint_url`, when set, the
    address outside clients (the CLI, browsers, jobs elsewhere) reach the same S3 service by: the
    presigned URLs handed out use it, signed for that host, so they validate at S3 when they
    arrive through that name. URLs made without a caller's address (`base_url` ""), which the
    platform's own job and notebook containers fetch their data by, keep the internal address:
    they run where the service runs, and may not reach the public name."""

    def __init__(self, endpoint_url: str, bucket: str, access_key: str, secret_key: str,
                 region: str | None = None, path_style: bool = True, create_bucket: bool = True,
                 public_endpoint_url: str | None = None):
        self.bucket = bucket

        def client(endpoint):
            return boto3.client(
                "s3",
                endpoint_url=endpoint or None,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                region_name=region or "us-east-1",
                config=Config(signature_version="s3v4",
                              s3={"addressing_style": "path" if path_style else "virtual"},
                              retries={"max_attempts": 3}),
            )

        self.client = client(endpoint_url)
        # presigning makes no request: this client only computes URLs for the public address
        self.presign_client = client(public_endpoint_url) if public_endpoint_url else self.client
        if create_bucket:
            self._ensure_bucket()

    def _presigner(self, base_url: str):
        """The client that signs URLs for a caller from outside (base_url given) or for the platform's
        own containers (no base_url)."""
        return self.presign_client if base_url else self.client

    def upload_origin(self, base_url: str) -> str:
        """The origin (scheme://host[:port]) of the part URLs `part_urls` hands a caller who used
        `base_url`: where a browser PUTs them (the web UI's Content-Security-Policy allows it). Taken
        from a URL signed as they are (signing makes no request), so it holds for the public
        address, the internal one and an endpoint boto3 chooses itself (AWS, virtual-hosted style)."""
        url = self._presigner(base_url).generate_presigned_url(
            "upload_part", Params={"Bucket": self.bucket, "Key": "origin", "UploadId": "origin", "PartNumber": 1},
            ExpiresIn=60)
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    def _ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                self.client.create_bucket(Bucket=self.bucket)
            else:
                raise StoreError(f"The S3 bucket {self.bucket} cannot be used: {_reason(e)}")

    # -- multipart upload -------------------------------------------------------------
    def start_upload(self, key):
        try:
            return self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        except (ClientError, BotoCoreError) as e:
            raise StoreError(f"S3 refused to start the upload: {_reason(e)}")

    def part_urls(self, key, upload_id, parts, base_url, expires_in):
        return [
            self._presigner(base_url).generate_presigned_url(
                "upload_part",
                Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": n},
                ExpiresIn=expires_in,
            )
            for n in range(1, parts + 1)
        ]

    def complete_upload(self, key, upload_id, etags):
        try:
            listed = self.client.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as e:
            raise StoreError(f"Unknown or finished upload: {_reason(e)}", client_error=True)
        stored = {p["PartNumber"]: p["ETag"].strip('"') for p in listed.get("Parts", [])}
        for number, etag in enumerate(etags, start=1):
            if number not in stored:
                raise StoreError(f"Part {number} was never uploaded.", client_error=True)
            if stored[number] != etag.strip('"'):
                raise StoreError(f"The ETag of part {number} does not match the uploaded part.", client_error=True)
        extra = sorted(n for n in stored if n > len(etags))
        if extra:
            raise StoreError(f"Parts {extra} were uploaded but not listed.", client_error=True)
        if not etags:
            # an empty file: S3 completes no upload without parts, so it is stored as one object
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=b"")
            except ClientError as e:
                raise StoreError(f"S3 refused the empty file: {_reason(e)}")
            self.abort_upload(key, upload_id)
            return 0
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{e.strip(chr(34))}"'}
                                           for n, e in enumerate(etags, start=1)]},
            )
        except ClientError as e:
            raise StoreError(f"S3 refused to complete the upload: {_reason(e)}", client_error=True)
        info = self.stat(key)
        return info.size if info else 0

    def abort_upload(self, key, upload_id):
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError:
            pass

    # -- objects ----------------------------------------------------------------------
    def download_url(self, key, file_name, base_url, expires_in):
        return self._presigner(base_url).generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key,
                    "ResponseContentDisposition": f"attachment; filename*=UTF-8''{quote(file_name)}"},
            ExpiresIn=expires_in,
        )

    def stat(self, key):
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StoreError(f"S3 failed: {_reason(e)}")
        return ObjectInfo(key=key, size=head["ContentLength"], last_modified=head["LastModified"].timestamp())

    def read(self, key, chunk_size=CHUNK) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as e:
            raise StoreError(f"No object {key}: {_reason(e)}", client_error=True)
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def write(self, key, chunks) -> int:
        upload_id = self.start_upload(key)
        etags, buffer, size = [], bytearray(), 0
        part_size = 8 * 1024 * 1024
        try:
            for chunk in chunks:
                buffer.extend(chunk)
                size += len(chunk)
                while len(buffer) >= part_size:
                    etags.append(self._put_part(key, upload_id, len(etags) + 1, bytes(buffer[:part_size])))
                    del buffer[:part_size]
            if buffer or not etags:
                etags.append(self._put_part(key, upload_id, len(etags) + 1, bytes(buffer)))
            self.complete_upload(key, upload_id, etags)
        except Exception:
            self.abort_upload(key, upload_id)
            raise
        return size

    def _put_part(self, key, upload_id, number, data) -> str:
        response = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                           PartNumber=number, Body=data)
        return response["ETag"]

    def delete(self, key):
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def list(self, prefix):
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield ObjectInfo(key=item["Key"], size=item["Size"], last_modified=item["LastModified"].timestamp())

    def pending_uploads(self) -> list[tuple[str, str, float]]:
        """(key, upload id, start time) of every unfinished multipart upload."""
        found = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket):
            for upload in page.get("Uploads", []):
                found.append((upload["Key"], upload["UploadId"], upload["Initiated"].timestamp()))
        return found


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return f"{err.get('Code', '?')}: {err.get('Message', '')}".strip()
    return str(error)
