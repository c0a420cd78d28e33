"""``awssession.session``: a boto3 session whose loader reads botocore's endpoint
table without keeping it; clients made from it must resolve endpoints as usual."""

from __future__ import annotations

import pytest

from runner import awssession


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
    session = awssession.session(region)
    client = session.client(service)  # clean_env supplies dummy credentials
    assert session.region_name == region
    assert client.meta.endpoint_url == expected


@pytest.mark.usefixtures("clean_env")
def test_each_session_reads_the_table_afresh() -> None:
    first = awssession.session("eu-west-1")
    loader = first._session.get_component("data_loader")
    assert isinstance(loader, awssession.EndpointsUncachedLoader)
    table, path = loader.load_data_with_path(awssession.ENDPOINTS)
    again, _ = loader.load_data_with_path(awssession.ENDPOINTS)
    assert path.endswith("botocore/data/endpoints")
    assert "partitions" in table
    assert table is not again  # not served from a cache that would outlive the clients
