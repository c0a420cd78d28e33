"""S3 as byte streams, for the database child: read objects chunk by chunk, write
one object as a multipart upload.

Owns: ``S3Streams`` (``S3`` with streaming reads and writes), ``MultipartWriter``,
and the gzip framing of both (``compression: gzip`` on an S3DataNode).

Must not: know about records, dialects or databases (``activities/copyjob.py``
does), or hold more than a part in memory.

Why this way: a CopyActivity moves gigabytes between S3 and a database; staging a
file on disk first would double the I/O and need the space. GetObject's body is
read in chunks, and an upload goes out in parts of ``part_size_bytes`` as soon as
each is full (the last part may be small), so memory stays flat. Errors are
translated the way ``S3`` translates them (``StagingError`` with an errorId) and the
first call of each is retried by its policy; a stream that breaks half-way fails
the copy (the upload is aborted), which the service retries as an attempt.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Iterator
from typing import Any

from runner.aws.s3 import S3, parse_s3_uri, relative_key_path

CHUNK_BYTES = 1024 * 1024
PART_BYTES = 16 * 1024 * 1024


class S3Streams(S3):
    """``S3`` plus streaming reads and multipart writes (same client, timeouts,
    retries and error translation). Blocking; thread-safe like ``S3``."""

    def keys(self, uri: str, *, stop: threading.Event | None = None) -> list[str]:
        """The objects a data node names: ``uri`` itself, or for a folder (a URI
        ending in ``/``) every object under it, in key order, folder markers
        skipped."""
        bucket, key = parse_s3_uri(uri)
        if key and not key.endswith("/"):
            return [uri]
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            uri, lambda: list(paginator.paginate(Bucket=bucket, Prefix=key)), stop
        )
        found = []
        for page in pages:
            for item in page.get("Contents", []):
                name = str(item["Key"])
                if relative_key_path(bucket, name, key) is not None:
                    found.append(f"s3://{bucket}/{name}")
        return sorted(found)

    def read(
        self,
        uri: str,
        *,
        gzip: bool = False,
        stop: threading.Event | None = None,
    ) -> Iterator[bytes]:
        """The bytes of one object, in chunks, gunzipped when ``gzip``."""
        bucket, key = parse_s3_uri(uri)
        answer = self._call(
            uri, lambda: self.client.get_object(Bucket=bucket, Key=key), stop
        )
        body = answer["Body"]
        try:
            chunks = iter(lambda: self._try(uri, lambda: body.read(CHUNK_BYTES)), b"")
            yield from (_gunzip(chunks) if gzip else chunks)
        finally:
            body.close()

    def writer(
        self, uri: str, *, gzip: bool = False, sse: bool = True
    ) -> MultipartWriter:
        """A multipart upload to ``uri`` (started by the first full part)."""
        return MultipartWriter(self, uri, gzip=gzip, sse=sse)


def _gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Inflate gzip data, members after members (``cat a.gz b.gz`` is valid)."""
    inflate = zlib.decompressobj(wbits=47)  # gzip or zlib header
    for chunk in chunks:
        data = chunk
        while data:
            yield inflate.decompress(data)
            if not inflate.eof:
                break
            data = inflate.unused_data
            inflate = zlib.decompressobj(wbits=47)
    yield inflate.flush()


class MultipartWriter:
    """Writes one object in parts. ``write`` blocks while a full part uploads;
    ``close`` uploads the rest and completes it (a small object is one PutObject);
    ``abort`` drops what was uploaded. Not thread-safe: one writer, one thread."""

    def __init__(
        self,
        streams: S3Streams,
        uri: str,
        *,
        gzip: bool,
        sse: bool,
        part_size_bytes: int = PART_BYTES,
    ) -> None:
        self._s3 = streams
        self.uri = uri
        self._bucket, self._key = parse_s3_uri(uri)
        self._extra: dict[str, Any] = {"ServerSideEncryption": "AES256"} if sse else {}
        self._deflate = zlib.compressobj(wbits=31) if gzip else None
        self._part_size = part_size_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        self.bytes_written += len(data)
        self._buffer += self._deflate.compress(data) if self._deflate else data
        while len(self._buffer) >= self._part_size:
            part = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            self._upload_part(part)

    def close(self) -> None:
        if self._deflate is not None:
            self._buffer += self._deflate.flush()
        rest = bytes(self._buffer)
        self._buffer.clear()
        client = self._s3.client
        if self._upload_id is None:
            self._s3._call(
                self.uri,
                lambda: client.put_object(
                    Bucket=self._bucket, Key=self._key, Body=rest, **self._extra
                ),
                None,
                op="upload",
            )
            return
        if rest:
            self._upload_part(rest)
        parts = {"Parts": self._parts}
        self._s3._call(
            self.uri,
            lambda: client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload=parts,
            ),
            None,
            op="upload",
        )

    def abort(self) -> None:
        """Drop the upload; never raises (the copy has failed already)."""
        if self._upload_id is None:
            return
        # best effort: the copy has failed already, and S3 expires what is left
        with contextlib.suppress(Exception):
            self._s3.client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )

    def _upload_part(self, data: bytes) -> None:
        client = self._s3.client
        if self._upload_id is None:
            started = self._s3._call(
                self.uri,
                lambda: client.create_multipart_upload(
                    Bucket=self._bucket, Key=self._key, **self._extra
                ),
                None,
            )
            self._upload_id = str(started["UploadId"])
        number = len(self._parts) + 1
        answer = self._s3._call(
            self.uri,
            lambda: client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            ),
            None,
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
