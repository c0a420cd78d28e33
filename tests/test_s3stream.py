"""S3 as streams for the database child, against moto's server: reads in chunks
(gzip members after members), and multipart writes whose parts grow so that a
stream of unknown size stays under S3's 10,000 parts."""

from __future__ import annotations

import gzip
import os
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
