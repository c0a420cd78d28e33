"""``aws_session.new_session``: a boto3 session whose loader reads botocore's endpoint
table without keeping it; clients made from it must resolve endpoints as usual."""

from __future__ import annotations

import pytest

from runner.aws import session as aws_session


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("region", "service", "expected"),
    [
        ("eu-west-1", "datapipeline", "https://datapipeline.eu-west-1.amazonaws.com"),
        ("us-east-1", "s3", "https://s3.amazonaws.com"),
        ("cn-north-1", "s3", "https://s3.cn-north-1.amazonaws.com.cn"),
    ],
)
def test_clients_resolve_endpoints_through_the_uncached_loader(
    region: str, service: str, expected: str
) -> None:
    session = aws_session.new_session(region)
    client = session.client(service)  # clean_env supplies dummy credentials
    assert session.region_name == region
    assert client.meta.endpoint_url == expected


@pytest.mark.usefixtures("clean_env")
def test_each_session_reads_the_table_afresh() -> None:
    first = aws_session.new_session("eu-west-1")
    loader = first._session.get_component("data_loader")
    assert isinstance(loader, aws_session.EndpointsUncachedLoader)
    table, path = loader.load_data_with_path(aws_session.ENDPOINTS)
    again, _ = loader.load_data_with_path(aws_session.ENDPOINTS)
    assert path.endswith("botocore/data/endpoints")
    assert "partitions" in table
    assert table is not again  # not served from a cache that would outlive the clients
