"""S3 URIs and keys as paths: ``s3://bucket/key`` parsed, and a key under a prefix
turned into a relative path that cannot leave its destination folder.

Pure functions: no client, no I/O. ``s3.py`` transfers; this module decides what
a URI names and where a key may land, so that a key with ``..``, an empty
segment, an absolute path or a NUL is refused before anything is written.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from runner.errors import StagingError


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``("bucket", "key")``; ``StagingError(S3InvalidUri)``
    for anything that is not an S3 URI with a bucket."""
    scheme, sep, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    if not sep or scheme.lower() not in ("s3", "s3n", "s3a") or not bucket:
        raise StagingError("S3InvalidUri", f"{uri!r} is not an s3://bucket/key URI")
    return bucket, key


def relative_key_path(bucket: str, key: str, prefix: str) -> PurePosixPath | None:
    """The safe relative path of ``key`` under ``prefix`` (which ends with ``/`` or is
    empty); ``None`` for a folder marker (a key ending in ``/``). Raises
    ``StagingError(S3PathTraversal)`` for ``..``, ``.``, empty segments, an absolute
    path or a NUL: anything that could land outside the destination folder."""
    relative = key[len(prefix) :]
    if relative == "":
        return None  # the folder marker of the prefix itself
    is_marker = relative.endswith("/")
    parts = relative.removesuffix("/").split("/")
    if not _safe_parts(parts):
        raise StagingError(
            "S3PathTraversal",
            f"refusing {f's3://{bucket}/{key}'!r}: it would land outside its folder",
        )
    return None if is_marker else PurePosixPath(*parts)


def _safe_parts(parts: list[str]) -> bool:
    return all(p not in ("", ".", "..") and "\0" not in p for p in parts)
