"""A real S3 HTTP endpoint for tests: moto's ThreadedMotoServer on 127.0.0.1.

Why a server and not ``mock_aws``: pyarrow's S3 client is C++ and bypasses botocore,
so only a real endpoint exercises the code users run against MinIO or AWS.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from negrec.storage import ENDPOINT_ENV, StorageOptions

FAKE_ACCESS_KEY = "AKIAMOTOFAKEKEY00001"
FAKE_SECRET_KEY = "moto-fake-secret-key-0123456789abcdefghij"
_bucket_numbers = itertools.count()


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    @property
    def options(self) -> StorageOptions:
        return StorageOptions(endpoint_url=self.endpoint_url, region="us-east-1")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Start moto once per session; fake credentials and the endpoint go in the env."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_REGION", "us-east-1")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("AWS_CONFIG_FILE", "/nonexistent/negrec-test-aws-config")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/negrec-test-aws-credentials")
        env.setenv(ENDPOINT_ENV, endpoint)
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        try:
            yield S3Server(endpoint_url=endpoint)
        finally:
            server.stop()


def new_bucket(server: S3Server) -> str:
    """A fresh, empty bucket: ``s3://negrec-test-<n>``."""
    from negrec.storage import boto3_client

    name = f"negrec-test-{next(_bucket_numbers)}"
    boto3_client(server.options).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture()
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket for one test."""
    return new_bucket(s3_server)
