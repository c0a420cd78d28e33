"""runner.aws.s3 against moto's standalone server over real HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import structlog
from boto3.s3.transfer import TransferConfig
from structlog.testing import capture_logs

from runner.aws.s3 import S3
from runner.aws.s3uri import parse_s3_uri, relative_key_path
from runner.errors import ActivityError, StagingError

MIB = 1024 * 1024


def test_parse_s3_uri_splits_bucket_and_key() -> None:
    assert parse_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")


@pytest.mark.parametrize("uri", ["/local/path", "http://b/k", "s3://", "s3:///key"])
def test_parse_s3_uri_refuses_what_is_not_s3(uri: str) -> None:
    with pytest.raises(StagingError) as info:
        parse_s3_uri(uri)
    assert info.value.error_id == "S3InvalidUri"
    assert isinstance(info.value, ActivityError)


@pytest.mark.parametrize(
    "key",
    ["p/../x", "p/a/../../x", "p//x", "p//", "p/./x", "p/a/..", "p/x\0y", "p/a//b"],
)
def test_relative_key_path_refuses_keys_that_escape(key: str) -> None:
    with pytest.raises(StagingError) as info:
        relative_key_path("b", key, "p/")
    assert info.value.error_id == "S3PathTraversal"
    assert repr(f"s3://b/{key}") in info.value.message


def test_relative_key_path_keeps_nested_keys_and_skips_folder_markers() -> None:
    assert str(relative_key_path("b", "p/a/b.txt", "p/")) == "a/b.txt"
    assert relative_key_path("b", "p/", "p/") is None
    assert relative_key_path("b", "p/a/", "p/") is None


def test_client_is_created_on_first_use_only(s3_env: dict[str, str]) -> None:
    s3 = S3(region="eu-west-1", log=structlog.get_logger())
    assert s3._client is None
    assert s3.client.meta.region_name == "eu-west-1"
    assert s3.client.meta.endpoint_url == s3_env["AWS_ENDPOINT_URL_S3"]
    assert s3.client.meta.config.retries["mode"] == "standard"


def test_large_object_round_trips_through_multipart(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    data = os.urandom(12 * MIB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    uri = f"s3://{s3_bucket}/data/big.bin"
    s3.upload_file(src, uri)
    head = s3_admin.head_object(Bucket=s3_bucket, Key="data/big.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-2")  # two 8 MiB parts: multipart
    assert head["ServerSideEncryption"] == "AES256"
    dest = tmp_path / "out" / "big.bin"
    assert s3.download_file(uri, dest) == len(data)
    assert dest.read_bytes() == data


def test_upload_without_sse_sends_no_encryption_header(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    src = tmp_path / "f.txt"
    src.write_text("plain")
    with capture_logs() as logs:
        s3.upload_file(src, f"s3://{s3_bucket}/f.txt", sse=False)
    assert [(e["event"], e["op"], e["uri"]) for e in logs] == [
        ("s3_transfer", "upload", f"s3://{s3_bucket}/f.txt")
    ]
    head = s3_admin.head_object(Bucket=s3_bucket, Key="f.txt")
    assert "ServerSideEncryption" not in head


def test_upload_dir_and_download_prefix_keep_a_nested_layout(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for rel in ("a.txt", "sub/b.txt", "sub/deeper/c.txt"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    uris = s3.upload_dir(src, f"s3://{s3_bucket}/out")
    assert sorted(uris) == [
        f"s3://{s3_bucket}/out/{rel}"
        for rel in ("a.txt", "sub/b.txt", "sub/deeper/c.txt")
    ]
    head = s3_admin.head_object(Bucket=s3_bucket, Key="out/sub/deeper/c.txt")
    assert head["ServerSideEncryption"] == "AES256"
    s3_admin.put_object(Bucket=s3_bucket, Key="out/empty-folder/", Body=b"")
    s3_admin.put_object(Bucket=s3_bucket, Key="outside.txt", Body=b"no")

    dest = tmp_path / "dest"
    paths = s3.download_prefix(f"s3://{s3_bucket}/out/", dest)
    assert sorted(p.relative_to(dest).as_posix() for p in paths) == [
        "a.txt",
        "sub/b.txt",
        "sub/deeper/c.txt",
    ]
    assert (dest / "sub/deeper/c.txt").read_text() == "sub/deeper/c.txt"
    assert not (dest / "outside.txt").exists()


@pytest.mark.parametrize("bad_key", ["prefix/../../evil", "prefix//x", "prefix/a/.."])
def test_download_prefix_refuses_traversal_and_writes_nothing(
    s3: S3, s3_bucket: str, s3_admin: Any, tmp_path: Path, bad_key: str
) -> None:
    s3_admin.put_object(Bucket=s3_bucket, Key="prefix/good.txt", Body=b"good")
    s3_admin.put_object(Bucket=s3_bucket, Key=bad_key, Body=b"evil")
    listed = s3_admin.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert bad_key in {item["Key"] for item in listed}  # moto kept the key as is
    dest = tmp_path / "stage" / "input1"
    with pytest.raises(StagingError) as info:
        s3.download_prefix(f"s3://{s3_bucket}/prefix", dest)
    assert info.value.error_id == "S3PathTraversal"
    assert f"s3://{s3_bucket}/{bad_key}" in info.value.message
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []


def test_missing_key_fails_with_the_object_named(
    s3: S3, s3_bucket: str, tmp_path: Path
) -> None:
    uri = f"s3://{s3_bucket}/no/such/key.txt"
    with pytest.raises(StagingError) as info:
        s3.download_file(uri, tmp_path / "x")
    assert info.value.error_id == "S3NoSuchKey"
    assert uri in info.value.message
    assert not (tmp_path / "x").exists()


def test_missing_bucket_fails_with_the_bucket_named(
    s3: S3, s3_env: dict[str, str], tmp_path: Path
) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    for call in (
        lambda: s3.download_file("s3://no-such-bucket-x/k", tmp_path / "d"),
        lambda: s3.upload_file(src, "s3://no-such-bucket-x/k"),
        lambda: s3.download_prefix("s3://no-such-bucket-x/p/", tmp_path / "d2"),
        lambda: s3.upload_dir(tmp_path, "s3://no-such-bucket-x/p/"),
        lambda: s3.exists("s3://no-such-bucket-x/k"),
    ):
        with pytest.raises(StagingError) as info:
            call()
        assert info.value.error_id == "S3NoSuchBucket"
        assert "no-such-bucket-x" in info.value.message


def test_exists_and_prefix_not_empty(s3: S3, s3_bucket: str, s3_admin: Any) -> None:
    s3_admin.put_object(Bucket=s3_bucket, Key="dir/file.txt", Body=b"1")
    assert s3.exists(f"s3://{s3_bucket}/dir/file.txt")
    assert not s3.exists(f"s3://{s3_bucket}/dir/other.txt")
    assert s3.exists(f"s3://{s3_bucket}/dir/")
    assert not s3.exists(f"s3://{s3_bucket}/empty/")
    assert s3.prefix_not_empty(f"s3://{s3_bucket}/di")
    assert not s3.prefix_not_empty(f"s3://{s3_bucket}/nothing")


def test_prefix_transfers_many_small_files_with_a_small_config(
    s3: S3, s3_bucket: str, tmp_path: Path, s3_env: dict[str, str]
) -> None:
    small = S3(
        region=None,
        log=structlog.get_logger(),
        transfer_config=TransferConfig(max_concurrency=2),
    )
    src = tmp_path / "many"
    src.mkdir()
    for n in range(40):
        (src / f"f{n:03}.txt").write_text(str(n))
    assert len(small.upload_dir(src, f"s3://{s3_bucket}/many/")) == 40
    paths = s3.download_prefix(f"s3://{s3_bucket}/many", tmp_path / "back")
    assert sorted(p.read_text() for p in paths) == sorted(str(n) for n in range(40))
