"""Everything that talks to AWS: the Data Pipeline client, the translation of
botocore's errors into ``runner.errors``, boto3 sessions, retry policies and S3
transfers.

Outside the ``localservice`` island, only this package imports boto3, botocore or
s3transfer (import-linter holds it), so a foreign error never travels further than
the module that caught it (httpx ``map_httpcore_exceptions``).
"""
