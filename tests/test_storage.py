"""Storage: local and s3:// round trips, commit, and errors that name the URI and the fix."""

from __future__ import annotations

import os
import socket
import time

import pytest

from negrec import storage
from negrec.errors import NegrecError
from negrec.storage import StorageOptions
from tests.s3 import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, S3Server


def _round_trip(root: str) -> None:
    storage.write_text(storage.join(root, "a/b.txt"), "hello")
    storage.write_bytes(storage.join(root, "a/c.bin"), b"\x00\x01")
    storage.write_text(storage.join(root, "z.csv"), "x")
    storage.write_text(storage.join(root, ".staging-1/hidden.txt"), "no")
    storage.write_text(storage.join(root, "a/_SUCCESS"), "")

    assert storage.read_text(storage.join(root, "a/b.txt")) == "hello"
    assert storage.read_bytes(storage.join(root, "a/c.bin")) == b"\x00\x01"
    assert storage.exists(storage.join(root, "a"))
    assert not storage.exists(storage.join(root, "nope"))
    listed = storage.list_files(root)
    assert listed == sorted(listed)
    assert [p.removeprefix(root.rstrip("/")) for p in listed] == ["/a/b.txt", "/a/c.bin", "/z.csv"]
    assert storage.list_files(root, suffix=".csv") == [storage.join(root, "z.csv")]
    assert storage.list_files(storage.join(root, "z.csv")) == [storage.join(root, "z.csv")]

    storage.delete_tree(storage.join(root, "a"))
    assert not storage.exists(storage.join(root, "a/b.txt"))
    storage.delete_tree(storage.join(root, "a"))  # deleting twice is fine


def test_local_round_trip(tmp_path):
    _round_trip(str(tmp_path / "out"))


def test_file_uri_and_relative_paths_resolve_to_the_same_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage.write_text("rel/x.txt", "same")
    assert storage.read_text(f"file://{tmp_path}/rel/x.txt") == "same"
    assert storage.resolve("rel/x.txt")[1] == str(tmp_path / "rel/x.txt")


def test_s3_round_trip(s3_bucket):
    _round_trip(f"{s3_bucket}/prefix")


def test_s3_options_from_env_point_at_the_test_server(s3_server: S3Server):
    assert StorageOptions.from_env().endpoint_url == s3_server.endpoint_url


def test_from_env_prefers_negrec_endpoint_then_aws():
    env = {"AWS_ENDPOINT_URL": "http://aws:1", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert StorageOptions.from_env(env) == StorageOptions("http://aws:1", "eu-west-1")
    env[storage.ENDPOINT_ENV] = "http://negrec:2"
    env["AWS_REGION"] = "us-west-2"
    assert StorageOptions.from_env(env) == StorageOptions("http://negrec:2", "us-west-2")


def test_join_uses_single_slashes():
    assert storage.join("s3://b/p/", "/x/", "y") == "s3://b/p/x/y"
    assert storage.join("/tmp/a", "", "b") == "/tmp/a/b"


def test_missing_local_file_names_the_uri(tmp_path):
    missing = str(tmp_path / "nothing.csv")
    with pytest.raises(NegrecError, match=r"nothing\.csv does not exist; check the URI"):
        storage.read_text(missing)
    with pytest.raises(NegrecError, match="does not exist"):
        storage.list_files(missing)


def test_missing_bucket_says_so(s3_server):
    with pytest.raises(NegrecError, match=r"bucket 'no-such-bucket' does not exist.*create it"):
        storage.read_text("s3://no-such-bucket/x.txt")
    with pytest.raises(NegrecError, match="bucket 'no-such-bucket' does not exist"):
        storage.write_text("s3://no-such-bucket/x.txt", "x")


def test_unsupported_scheme_and_bucketless_uri():
    with pytest.raises(NegrecError, match=r"unsupported URI scheme 'gs://'"):
        storage.resolve("gs://bucket/x")
    with pytest.raises(NegrecError, match="names no bucket"):
        storage.resolve("s3://")


def test_wrong_credentials_fail_fast_without_leaking_them(s3_bucket, monkeypatch):
    from moto.core.authorization import enable_iam_authentication

    uri = f"{s3_bucket}/data.txt"
    storage.write_text(uri, "secret data")
    wrong_secret = "WrongSecretValue0123456789abcdefghijklmno"
    wrong_key = "AKIAWRONGKEY00000001"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", wrong_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
    with enable_iam_authentication():
        for call in (lambda: storage.read_text(uri), lambda: storage.write_text(uri, "x")):
            started = time.monotonic()
            with pytest.raises(NegrecError) as caught:
                call()
            assert time.monotonic() - started < 10
            message = str(caught.value)
            assert "access denied" in message and "AWS_ACCESS_KEY_ID" in message
            assert uri in message
            for leaked in (wrong_secret, wrong_key, FAKE_SECRET_KEY, FAKE_ACCESS_KEY):
                assert leaked not in message


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_endpoint_fails_in_seconds(s3_server):
    options = StorageOptions(endpoint_url=f"http://127.0.0.1:{_closed_port()}", max_attempts=2)
    started = time.monotonic()
    with pytest.raises(NegrecError) as caught:
        storage.read_text("s3://bucket/x.txt", options)
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "unreachable" in message and storage.ENDPOINT_ENV in message
    assert "s3://bucket/x.txt" in message
    assert FAKE_SECRET_KEY not in message


def test_malformed_endpoint_is_rejected():
    with pytest.raises(NegrecError, match="is not a URL"):
        storage.resolve("s3://b/x", StorageOptions(endpoint_url="127.0.0.1:9000"))


def test_redact_removes_every_kind_of_credential(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-xyz")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "tok-123456")
    text = (
        "key AKIAABCDEFGHIJKLMNOP secret s3cr3t-value-xyz token tok-123456 "
        "url http://user:pa55@host/x X-Amz-Signature=abcdef0123 password: hunter2 "
        "extra other-secret"
    )
    redacted = storage.redact(text, secrets=["other-secret"])
    for leaked in ("AKIAABCDEFGHIJKLMNOP", "s3cr3t", "tok-123456", "pa55", "abcdef0123", "hunter2"):
        assert leaked not in redacted
    assert "other-secret" not in redacted
    assert "http://***@host/x" in redacted and "key" in redacted


def test_commit_replaces_an_earlier_output_with_the_marker_last(tmp_path):
    final = str(tmp_path / "out")
    for version, parts in ((1, ["a", "b", "stale"]), (2, ["a", "b"])):
        staging = storage.staging_uri(final)
        assert os.path.basename(staging).startswith(".out.staging-")
        for part in parts:
            storage.write_text(storage.join(staging, part), f"v{version}")
        storage.write_text(storage.join(staging, "manifest.json"), f"v{version}")
        storage.commit(staging, final, "manifest.json")
        assert not storage.exists(staging)
    assert [os.path.basename(p) for p in storage.list_files(final)] == ["a", "b", "manifest.json"]
    assert storage.read_text(storage.join(final, "a")) == "v2"
    assert os.listdir(tmp_path) == ["out"]  # no staging or old copy left behind


def test_commit_refuses_to_replace_a_foreign_directory(tmp_path):
    final = tmp_path / "mine"
    final.mkdir()
    (final / "thesis.tex").write_text("precious")
    staging = storage.staging_uri(str(final))
    storage.write_text(storage.join(staging, "manifest.json"), "{}")
    with pytest.raises(NegrecError, match=r"not an earlier negrec output.*nothing was deleted"):
        storage.commit(staging, str(final), "manifest.json")
    assert (final / "thesis.tex").read_text() == "precious"
    with pytest.raises(NegrecError, match=r"holds no manifest\.json"):
        storage.commit(str(tmp_path / "empty-staging"), str(tmp_path / "x"), "manifest.json")


def test_commit_on_s3_copies_objects_and_drops_stale_ones(s3_bucket):
    final = f"{s3_bucket}/run"
    storage.write_text(f"{final}/stale.txt", "old")
    storage.write_text(f"{final}/manifest.json", "old")
    staging = storage.staging_uri(final)
    storage.write_text(f"{staging}/shards/0.parquet", "new")
    storage.write_text(f"{staging}/manifest.json", "new")
    storage.commit(staging, final, "manifest.json")
    assert storage.list_files(final) == [f"{final}/manifest.json", f"{final}/shards/0.parquet"]
    assert storage.read_text(f"{final}/manifest.json") == "new"
    assert not storage.exists(staging)


def test_refuses_to_delete_a_whole_bucket(s3_bucket):
    with pytest.raises(NegrecError, match="refusing to delete the whole bucket"):
        storage.delete_tree(s3_bucket)


def test_configure_environment_exports_the_endpoint_for_mlflow_and_boto3(monkeypatch):
    monkeypatch.setattr(os, "environ", {})  # a scratch environment, dropped after the test
    exported = storage.configure_environment(StorageOptions("http://127.0.0.1:9", "eu-west-1"))
    assert os.environ["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert os.environ["AWS_REGION"] == "eu-west-1"
    assert exported == os.environ and storage.ENDPOINT_ENV in exported


def test_boto3_client_sees_what_pyarrow_wrote(s3_bucket, s3_server):
    storage.write_text(f"{s3_bucket}/k.txt", "via pyarrow")
    client = storage.boto3_client(s3_server.options)
    assert client.meta.endpoint_url == s3_server.endpoint_url
    body = client.get_object(Bucket=s3_bucket.removeprefix("s3://"), Key="k.txt")["Body"]
    assert body.read() == b"via pyarrow"
