"""Where raw data comes from: a local folder or ``s3://bucket/prefix``, read by paths relative to that root.

S3 goes through boto3 with the standard AWS environment (``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, keys or
profiles); nothing about credentials is passed or logged here. Throttling, 5xx and dropped connections are retried
(em3.retries); what still fails is a DataError naming the object. Relative paths that come from input (config
values, ``image_path`` columns) must stay inside the root: no ``..`` segment, no absolute path, no backslash;
a link inside a local source that leads out of it is refused (``OutsideSource``).

``stamp`` says which version of a file the source holds now, so that later stages can tell whether the tables
ingest built still match their source (em3.validation.freshness): a local file's sha256; an S3 object's ETag,
size and last-modified time (read without downloading), taken before the download at ingest.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from em3.errors import DataError
from em3.retries import s3_client_config, s3_retries

BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

# A relative path that leaves its root or is not portable: leading slash or drive, `..` segment, `\`, NUL.
UNSAFE_PATH = r"^/|^[A-Za-z]:|\\|\x00|(?:^|/)\.\.(?:/|$)"


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, hex (read in chunks)."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def check_relative(path: str, what: str) -> str:
    """``path`` if it is a non-empty relative path inside its root, else a DataError naming ``what``."""
    if not path or re.search(UNSAFE_PATH, path):
        raise DataError(f"{what}: {path!r} is not a relative path inside the source (no '..', no leading '/')")
    return path


class OutsideSource(DataError):
    """A path of a local source that resolves (through a link) to a file outside the source's root."""


class Source(Protocol):
    uri: str

    def fetch(self, rel: str, dest: Path) -> bool:
        """Copy file ``rel`` to ``dest``; False when there is no such file."""

    def local(self, rel: str, scratch: Path) -> Path | None:
        """A local path holding file ``rel`` (downloaded under ``scratch`` if needed), None when missing."""

    def list_files(self, rel_dir: str) -> list[str]:
        """The files under folder ``rel_dir`` (at any depth), as sorted paths relative to the root; [] when the
        folder does not exist."""

    def stamp(self, rel: str) -> dict[str, Any] | None:
        """Which version of file ``rel`` the source holds now; None when there is no such file."""

    def read_stamp(self, rel: str, sha256: str) -> dict[str, Any]:
        """The stamp of the version of ``rel`` that ``local`` returned, whose bytes hash to ``sha256``."""


@dataclass(frozen=True)
class LocalSource:
    root: Path

    @property
    def uri(self) -> str:
        return str(self.root)

    def fetch(self, rel: str, dest: Path) -> bool:
        path = self._path(rel)
        if not path.is_file():
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        return True

    def local(self, rel: str, scratch: Path) -> Path | None:
        path = self._path(rel)
        return path if path.is_file() else None

    def stamp(self, rel: str) -> dict[str, Any] | None:
        path = self._path(rel)
        if not path.is_file():
            return None
        return {"sha256": file_sha256(path)}

    def read_stamp(self, rel: str, sha256: str) -> dict[str, Any]:
        return {"sha256": sha256}

    def _path(self, rel: str) -> Path:
        """File ``rel`` of the root; an OutsideSource error when it resolves (through links) to a place outside."""
        path = self.root / check_relative(rel, self.uri)
        target, root = path.resolve(), self.root.resolve()
        if not target.is_relative_to(root):
            raise OutsideSource(
                f"{self.uri.rstrip('/')}/{rel}: a link to {target}, outside the source folder {root}; refused "
                "(copy the file into the source instead of linking it)"
            )
        return path

    def list_files(self, rel_dir: str) -> list[str]:
        folder = self._path(rel_dir)
        return sorted(path.relative_to(self.root).as_posix() for path in folder.rglob("*") if path.is_file())


@dataclass(frozen=True)
class S3Source:
    bucket: str
    prefix: str
    client: Any
    stamps_at_read: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def fetch(self, rel: str, dest: Path) -> bool:
        from botocore.exceptions import ClientError

        key = self.prefix + check_relative(rel, self.uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.errors_named(key):
                self.client.download_file(self.bucket, key, str(dest))
        except ClientError:  # only "no such key" gets here
            return False
        return True

    def list_files(self, rel_dir: str) -> list[str]:
        prefix = self.prefix + check_relative(rel_dir, self.uri).rstrip("/") + "/"
        with self.errors_named(prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return sorted(key.removeprefix(self.prefix) for key in keys if not key.endswith("/"))

    @contextmanager
    def errors_named(self, key: str, action: str = "read") -> Iterator[None]:
        """S3 failures as DataErrors naming ``s3://bucket/key`` (cannot ``action`` it); a missing key's ClientError
        passes through."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
        from s3transfer.exceptions import RetriesExceededError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"404", "NoSuchKey", "NotFound"}:
                raise
            retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
            tried = f" after {retries + 1} attempts" if retries else ""
            raise DataError(f"s3://{self.bucket}/{key}: cannot {action} ({code or exc}){tried}") from None
        except NoCredentialsError:
            raise DataError(
                f"s3://{self.bucket}/{key}: no AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE, or a role) in the environment"
            ) from None
        except (BotoCoreError, RetriesExceededError) as exc:
            mode, attempts = s3_retries()
            raise DataError(
                f"s3://{self.bucket}/{key}: cannot {action} ({exc}; {mode} retries, at most {attempts} attempts: "
                "AWS_MAX_ATTEMPTS)"
            ) from None

    def local(self, rel: str, scratch: Path) -> Path | None:
        """Downloads ``rel``; its stamp is taken first, so that a change during the download reads as a change."""
        dest = scratch / check_relative(rel, self.uri)
        if (stamp := self.stamp(rel)) is None or not self.fetch(rel, dest):
            return None
        self.stamps_at_read[rel] = stamp
        return dest

    def stamp(self, rel: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        key = self.prefix + check_relative(rel, self.uri)
        try:
            with self.errors_named(key):
                head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError:  # only "no such key" gets here
            return None
        return {"etag": head["ETag"], "size": head["ContentLength"], "last_modified": head["LastModified"].isoformat()}

    def read_stamp(self, rel: str, sha256: str) -> dict[str, Any]:
        return self.stamps_at_read[rel]


def open_source(uri: str) -> Source:
    """A local folder, or ``s3://bucket/prefix`` (boto3 with em3.retries, configured by the environment)."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not BUCKET.match(bucket):
            raise DataError(f"{uri}: {bucket!r} is not a valid S3 bucket name")
        prefix = prefix.rstrip("/")
        if prefix:
            check_relative(prefix, f"{uri} (key prefix)")
        import boto3

        client = boto3.client("s3", config=s3_client_config())
        return S3Source(bucket, prefix + "/" if prefix else "", client)
    if "://" in uri:
        raise DataError(f"{uri}: unsupported source; expected a local folder or s3://bucket/prefix")
    root = Path(uri)
    if not root.is_dir():
        raise DataError(f"{uri}: source folder not found")
    return LocalSource(root)
