"""``aws_session.new_session``: a boto3 session for a region, from boto3's chain or
from the credentials given; clients made from it resolve endpoints as usual."""

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
def test_clients_resolve_endpoints_for_the_sessions_region(
    region: str, service: str, expected: str
) -> None:
    session = aws_session.new_session(region)
    client = session.client(service)  # clean_env supplies dummy credentials
    assert session.region_name == region
    assert client.meta.endpoint_url == expected


@pytest.mark.usefixtures("clean_env")
def test_given_credentials_replace_the_chain_and_their_secret_is_known() -> None:
    session = aws_session.new_session("eu-west-1", ("AKIDGIVEN", "given-secret"))
    frozen = session.get_credentials().get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key) == ("AKIDGIVEN", "given-secret")
    assert aws_session.credential_secrets(session) == ("given-secret",)
