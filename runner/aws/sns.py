"""Publishing an SnsAlarm: what an exported DAG's ``onFail``/``onSuccess`` does.

Owns: ``publish``, one SNS Publish to a topic, in the topic ARN's region, with
boto3's credential chain (on Airflow: the worker's role or environment; an
endpoint override through ``AWS_ENDPOINT_URL_SNS``, as boto3 reads it).

Must not: be imported by the runner itself (only ``runner.airflow.operator``,
inside Airflow, imports it, lazily); retry on its own beyond botocore's retries:
an alarm that cannot be sent fails Airflow's callback, which logs it.
"""

from __future__ import annotations

from runner.aws.session import new_session

#: SNS's limit on a subject (AWS: 100 characters, printable ASCII).
SUBJECT_LIMIT = 100


def region_of(topic_arn: str) -> str:
    """``arn:aws:sns:REGION:ACCOUNT:NAME`` -> ``REGION``. ValueError else."""
    parts = topic_arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "sns" or not parts[3]:
        raise ValueError(f"{topic_arn!r} is not an SNS topic ARN")
    return parts[3]


def publish(topic_arn: str, subject: str, message: str) -> str:
    """Publish ``message`` (and ``subject``, cut to SNS's limit) to the topic;
    the MessageId."""
    client = new_session(region_of(topic_arn)).client("sns")
    request = {"TopicArn": topic_arn, "Message": message or subject or "dp-runner"}
    if subject:
        request["Subject"] = subject[:SUBJECT_LIMIT]
    answer = client.publish(**request)
    return str(answer["MessageId"])
