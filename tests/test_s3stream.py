"""S3 as streams for the database child, against moto's server: reads in chunks
(gzip members after members), and multipart writes whose parts grow so that a
stream of unknown size stays under S3's 10,000 parts."""

from __future__ import annotations

import base64
import gzip
import os
import zlib
from typing import Any

import structlog

from runner.aws.s3stream import MultipartWriter, S3Streams

MIB = 1024 * 1024


def streams() -> S3Streams:
    return S3Streams(region=None, log=structlog.get_logger())


def test_parts_grow_and_the_object_comes_back_whole(
    s3_admin: Any, s3_bucket: str
) -> None:
    data = os.urandom(5 * MIB) * 7  # 35 MiB: parts of 5, 5, 10, 10, then the rest
    writer = MultipartWriter(
        streams(),
        f"s3://{s3_bucket}/big.bin",
        gzip=False,
        sse=True,
        part_size_bytes=5 * MIB,
        parts_per_step=2,
    )
    for offset in range(0, len(data), MIB):
        writer.write(data[offset : offset + MIB])
    assert writer.next_part_size() == 15 * MIB
    writer.close()
    got = s3_admin.get_object(Bucket=s3_bucket, Key="big.bin")
    assert got["Body"].read() == data
    assert got["ETag"].endswith('-5"')  # a multipart object's ETag counts its parts


def test_reads_are_chunked_and_gunzip_every_member(
    s3_admin: Any, s3_bucket: str
) -> None:
    body = gzip.compress(b"a,b\n") + gzip.compress(b"c,d\n" * 1000)
    s3_admin.put_object(Bucket=s3_bucket, Key="two.gz", Body=body)
    got = b"".join(streams().read(f"s3://{s3_bucket}/two.gz", gzip=True))
    assert got == b"a,b\n" + b"c,d\n" * 1000


def test_a_small_object_is_one_put_and_an_aborted_one_leaves_nothing(
    s3_admin: Any, s3_bucket: str
) -> None:
    small = streams().writer(f"s3://{s3_bucket}/small.csv")
    small.write(b"x,y\n")
    small.close()
    assert s3_admin.get_object(Bucket=s3_bucket, Key="small.csv")["Body"].read() == (
        b"x,y\n"
    )
    big = MultipartWriter(
        streams(),
        f"s3://{s3_bucket}/gone.bin",
        gzip=False,
        sse=True,
        part_size_bytes=5 * MIB,
    )
    big.write(os.urandom(11 * MIB))
    big.abort()
    assert s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    keys = [o["Key"] for o in s3_admin.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == ["small.csv"]


def test_every_part_carries_the_crc32_of_its_bytes(
    s3_admin: Any, s3_bucket: str
) -> None:
    """What goes on the wire, seen through botocore's own send event: parts of
    exactly the part size, each UploadPart's checksum header the CRC32 of the
    bytes sent, the completion listing them all, and the object keeping a
    checksum of its parts (as ``aws s3 cp`` leaves it); a small object's one
    PutObject carries its CRC32 too."""
    writer_streams = streams()
    sent: dict[str, list[Any]] = {"parts": [], "sizes": [], "complete": [], "put": []}

    def record(request: Any, **_: Any) -> None:
        if "partNumber=" in request.url:
            body = request.body
            sent["parts"].append((header_of(request), crc32_of(body)))
            sent["sizes"].append(len(body))
        elif "uploadId=" in request.url and request.method == "POST":
            sent["complete"].append(request.body)
        elif request.method == "PUT":
            sent["put"].append((header_of(request), crc32_of(request.body)))

    writer_streams.client.meta.events.register("before-send.s3", record)
    data = os.urandom(15 * MIB)
    writer = MultipartWriter(
        writer_streams,
        f"s3://{s3_bucket}/summed.bin",
        gzip=False,
        sse=False,
        part_size_bytes=5 * MIB,
    )
    for offset in range(0, len(data), 3 * MIB):  # chunks that straddle the parts
        writer.write(data[offset : offset + 3 * MIB])
    writer.close()
    assert sent["sizes"] == [5 * MIB] * 3  # exactly the part size, as the CLI's
    assert all(header == actual for header, actual in sent["parts"]), sent["parts"]
    (complete,) = sent["complete"]
    for header, _ in sent["parts"]:
        assert f"<ChecksumCRC32>{header}</ChecksumCRC32>".encode() in complete
    head = s3_admin.head_object(
        Bucket=s3_bucket, Key="summed.bin", ChecksumMode="ENABLED"
    )
    # a checksum of the parts' checksums (without a declared algorithm: none)
    assert head.get("ChecksumCRC32")

    small = writer_streams.writer(f"s3://{s3_bucket}/small.csv")
    small.write(b"x,y\n")
    small.close()
    assert sent["put"] == [(crc32_of(b"x,y\n"), crc32_of(b"x,y\n"))]


def crc32_of(body: Any) -> str:
    data = body.getvalue() if hasattr(body, "getvalue") else bytes(body)
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def header_of(request: Any) -> str:
    value = request.headers.get("x-amz-checksum-crc32") or b""
    return value.decode() if isinstance(value, bytes) else str(value)
