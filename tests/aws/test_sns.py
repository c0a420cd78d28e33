"""``runner.aws.sns.publish``, an exported DAG's SnsAlarm, against moto's server:
the message reaches an SQS queue subscribed to the topic, in the topic's region."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from runner.aws import sns


def test_publish_reaches_a_subscribed_queue(
    s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = s3_env["AWS_ENDPOINT_URL_S3"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", endpoint)
    region = "eu-west-1"  # the topic's, not the environment's
    topics: Any = boto3.client("sns", region_name=region, endpoint_url=endpoint)
    queues: Any = boto3.client("sqs", region_name=region, endpoint_url=endpoint)
    topic = topics.create_topic(Name="ops")["TopicArn"]
    queue_url = queues.create_queue(QueueName="ops-inbox")["QueueUrl"]
    queue_arn = queues.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    topics.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    message_id = sns.publish(topic, "Load failed " + "x" * 200, "Load failed at 3am")
    got = queues.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)["Messages"]
    body = json.loads(got[0]["Body"])
    assert body["MessageId"] == message_id
    assert body["Message"] == "Load failed at 3am"
    assert body["Subject"] == ("Load failed " + "x" * 200)[: sns.SUBJECT_LIMIT]


@pytest.mark.parametrize("arn", ["", "arn:aws:s3:::bucket", "arn:aws:sns::1:ops"])
def test_a_topic_arn_without_a_region_is_refused(arn: str) -> None:
    with pytest.raises(ValueError, match="not an SNS topic ARN"):
        sns.region_of(arn)
