"""S3 as byte streams, for the database child: read objects chunk by chunk, write
one object as a multipart upload.

Owns: ``S3Streams`` (``S3`` with streaming reads and writes), ``MultipartWriter``,
and the gzip framing of both (``compression: gzip`` on an S3DataNode).

Must not: know about records, dialects or databases (``dbchild/copyjob.py``
does), or hold more than ``UPLOADS_IN_FLIGHT + 1`` parts in memory.

Why this way: a CopyActivity moves gigabytes between S3 and a database; staging a
file on disk first would double the I/O and need the space. GetObject's body is
read in chunks, and an upload goes out in parts of ``part_size_bytes`` as soon as
each is full (the last part may be small), so memory stays flat. Errors are
translated the way ``S3`` translates them (``StagingError`` with an errorId) and the
first call of each is retried by its policy; a stream that breaks half-way fails
the copy (the upload is aborted), which the service retries as an attempt. Every
part (and a small object's one PutObject) carries the CRC32 of its bytes, as ``aws
s3 cp`` sends: S3 refuses a part whose bytes do not match it (``BadDigest``), and
the object keeps a checksum of its parts that a reader can ask for.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.config import Config

from runner.aws.s3 import S3
from runner.aws.s3uri import parse_s3_uri, relative_key_path

CHUNK_BYTES = 1024 * 1024
PART_BYTES = 8 * 1024 * 1024  # as the AWS CLI's, and the minimum S3 takes is 5 MiB
PARTS_PER_STEP = 1000
#: Parts uploading at once (as ``aws s3 cp`` does): about that many parts of memory.
UPLOADS_IN_FLIGHT = 4


class S3Streams(S3):
    """``S3`` plus streaming reads and multipart writes (same client, timeouts,
    retries and error translation). Blocking; thread-safe like ``S3``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A part's body stays one bytes object, sent by one sendall that releases
        # the GIL once: botocore's default (a CRC32 trailer, "aws-chunked") wraps
        # it in a reader sent 8 KB at a time, and each block then waits for the
        # GIL held by the thread that reads the database (the convoy effect).
        # The writer computes the same CRC32 itself and sends it as a header.
        self._botocore_config = self._botocore_config.merge(
            Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
        )

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
    """Writes one object in parts. A full part goes to a small pool of uploads
    (``UPLOADS_IN_FLIGHT`` at most; ``write`` blocks when they are all busy);
    ``close`` uploads the rest and completes it (a small object is one
    PutObject); ``abort`` drops what was uploaded. One writer, one thread.

    Memory holds ``UPLOADS_IN_FLIGHT + 1`` part buffers, whatever the size: the
    bytes are copied once, into a buffer of the part's size, and a buffer whose
    upload has finished is filled again. (Parts made anew, a join of the chunks
    for each, left the allocator's heap more fragmented at each gigabyte: the
    child of a PostgreSQL export reached 141 MB at 1 GB, 173 MB at 3 GB and
    197 MB at 6 GB.)"""

    def __init__(
        self,
        streams: S3Streams,
        uri: str,
        *,
        gzip: bool,
        sse: bool,
        part_size_bytes: int = PART_BYTES,
        parts_per_step: int = PARTS_PER_STEP,
    ) -> None:
        self._s3 = streams
        self.uri = uri
        self._bucket, self._key = parse_s3_uri(uri)
        self._extra: dict[str, Any] = {"ServerSideEncryption": "AES256"} if sse else {}
        self._deflate = zlib.compressobj(wbits=31) if gzip else None
        self._part_size = part_size_bytes
        self._parts_per_step = parts_per_step
        self._part: bytearray | None = None  # the part being filled
        self._size = 0  # the size it is filled to
        self._fill = 0
        self._free: list[bytearray] = []  # buffers whose upload has finished
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(UPLOADS_IN_FLIGHT)
        self._parts: list[Future[dict[str, Any]]] = []
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        """Add ``data``, copied into the part being filled; a full part goes out
        at once (every part but the last has exactly the part size)."""
        self.bytes_written += len(data)
        self._put(self._deflate.compress(data) if self._deflate else data)

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._part is None:
                self._size = self.next_part_size()
                self._part, self._fill = self._buffer(self._size), 0
            piece = view[: self._size - self._fill]
            end = self._fill + len(piece)
            # overwrites a reused buffer; a new one grows, so a small object
            # never takes a whole part's memory
            self._part[self._fill : end] = piece
            self._fill = end
            view = view[len(piece) :]
            if end == self._size:
                self._send(self._part)
                self._part = None

    def _buffer(self, size: int) -> bytearray:
        """A buffer for the next part: one whose upload has finished, while the
        part size is unchanged; else a new, empty one."""
        while self._free:
            buffer = self._free.pop()
            if len(buffer) == size:
                return buffer
        return bytearray()

    def _rest(self) -> bytes:
        """What is left to send: the part being filled, as far as it is."""
        if self._deflate is not None:
            self._put(self._deflate.flush())
        if self._part is None:
            return b""
        rest = bytes(memoryview(self._part)[: self._fill])
        self._part = None
        return rest

    def next_part_size(self) -> int:
        """The size of the next part: ``part_size_bytes`` for the first
        ``parts_per_step`` parts, twice that for the next as many, and so on. The
        size of a stream is not known ahead, and S3 takes at most 10,000 parts: 8
        MB parts alone would stop an export at 80 GB; growing ones reach 400 GB."""
        return self._part_size * (1 + len(self._parts) // self._parts_per_step)

    def _send(self, part: bytes | bytearray) -> None:
        """Start uploading a part (blocks while every upload slot is busy); the
        producer (a COPY, a cursor) goes on meanwhile. Raises the error of a part
        that failed already."""
        if self._pool is None:
            self._upload_id = self._create()
            self._pool = ThreadPoolExecutor(UPLOADS_IN_FLIGHT, "s3-part")
        for done in self._parts:
            if done.done() and done.exception() is not None:
                raise done.exception()  # type: ignore[misc]  # checked: not None
        self._slots.acquire()
        number = len(self._parts) + 1
        future = self._pool.submit(self._upload_part, number, part)
        future.add_done_callback(lambda _: self._finished(part))
        self._parts.append(future)

    def _finished(self, part: bytes | bytearray) -> None:
        """A part's upload is over (in its pool thread): its buffer is free (a
        list's append is atomic), then its slot."""
        if isinstance(part, bytearray):
            self._free.append(part)
        self._slots.release()

    def _finish_uploads(self) -> list[dict[str, Any]]:
        """Wait for every part; their numbers and ETags, or the first error."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        return [future.result() for future in self._parts]

    def close(self) -> None:
        rest = self._rest()
        client = self._s3.client
        if self._pool is None:
            self._s3._call(
                self.uri,
                lambda: client.put_object(
                    Bucket=self._bucket,
                    Key=self._key,
                    Body=rest,
                    ChecksumCRC32=crc32(rest),
                    **self._extra,
                ),
                None,
                op="upload",
            )
            return
        if rest:
            self._send(rest)
        parts = {"Parts": self._finish_uploads()}
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
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._upload_id is None:
            return
        # best effort: the copy has failed already, and S3 expires what is left
        with contextlib.suppress(Exception):
            self._s3.client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )

    def _create(self) -> str:
        client = self._s3.client
        started = self._s3._call(
            self.uri,
            lambda: client.create_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                ChecksumAlgorithm="CRC32",
                **self._extra,
            ),
            None,
        )
        return str(started["UploadId"])

    def _upload_part(self, number: int, data: bytes | bytearray) -> dict[str, Any]:
        """One part (in a pool thread); what the completion lists of it."""
        client = self._s3.client
        checksum = crc32(data)
        answer = self._s3._call(
            self.uri,
            lambda: client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
                ChecksumCRC32=checksum,
            ),
            None,
        )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": checksum}


def crc32(data: bytes | bytearray) -> str:
    """The CRC32 of ``data`` as S3 spells it: four big-endian bytes in base64
    (``zlib`` computes it without the GIL, beside the database read)."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")
