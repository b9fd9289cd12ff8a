"""Object storage: the one module that knows about endpoints and credentials.

Every stage names its inputs and outputs by URI: a local path (absolute, relative or
``file://``) or ``s3://bucket/prefix``. This module turns a URI into a pyarrow
filesystem and path, and turns storage failures into a ``NegrecError`` that names the
URI and the fix. Why one place: pyarrow ignores ``AWS_ENDPOINT_URL``, boto3 reads it
and MLflow reads ``MLFLOW_S3_ENDPOINT_URL``; if each caller configured the endpoint
itself they would drift apart and an S3-compatible store (MinIO, Ceph, moto) would
work for one stage and not the next.

Credentials are never passed around here: pyarrow and boto3 both take them from the
standard AWS chain (environment variables, shared config files, instance roles).
Every error message goes through :func:`redact`, so a key, secret or session token
that leaks into a library's message never reaches a log.

Committing output: S3 has no rename, so an output is *committed* by writing a marker
file (``manifest.json``, ``generator.json``) last. Writers stage under a hidden
sibling prefix (:func:`staging_uri`), then :func:`commit` replaces the final prefix
and copies the marker last; readers treat a prefix without its marker as incomplete.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
from pydantic import AfterValidator

from negrec.errors import NegrecError

ENDPOINT_ENV = "NEGREC_S3_ENDPOINT_URL"
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
REDACTED = "***"


@dataclass(frozen=True)
class StorageOptions:
    """Where the S3 endpoint is and how long to wait for it; never credentials.

    ``region`` is the bucket's region: pyarrow does not look it up, so AWS buckets
    outside us-east-1 need it (``AWS_REGION``). ``connect_timeout_s`` and
    ``max_attempts`` are small on purpose: a wrong endpoint must fail in seconds, not
    after minutes of retries.
    """

    endpoint_url: str | None = None
    region: str | None = None
    connect_timeout_s: float = 5.0
    max_attempts: int = 3

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StorageOptions:
        """``NEGREC_S3_ENDPOINT_URL`` (else ``AWS_ENDPOINT_URL``) and ``AWS_REGION``."""
        env = os.environ if environ is None else environ
        endpoint = env.get(ENDPOINT_ENV) or env.get("AWS_ENDPOINT_URL") or None
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        return cls(endpoint_url=endpoint, region=region)


def _options(options: StorageOptions | None) -> StorageOptions:
    return StorageOptions.from_env() if options is None else options


# --- redaction ----------------------------------------------------------------------

_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")
_SECRET_FIELD = re.compile(
    r"(?i)((?:secret|token|signature|credential|password|access[_-]?key)[\w.-]*"
    r"[\"']?\s*[=:]\s*[\"']?)([^\s\"'&,;<>]+)"
)
_URL_USERINFO = re.compile(r"(://)[^/\s@]+@")


def redact(text: str, secrets: list[str] | None = None) -> str:
    """Remove credentials from ``text``: the values of the AWS credential variables,
    any ``secrets`` given, access key ids, ``secret=...``-style fields and the
    user-info part of URLs."""
    values = [os.environ.get(name, "") for name in CREDENTIAL_ENV] + list(secrets or [])
    for value in sorted({v for v in values if len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    text = _KEY_ID.sub(REDACTED, text)
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + REDACTED, text)
    return _URL_USERINFO.sub(r"\1" + REDACTED + "@", text)


# --- URIs ---------------------------------------------------------------------------


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def _local_path(uri: str) -> str:
    if uri.startswith("file://"):
        uri = urlparse(uri).path
    elif "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise NegrecError(
            f"unsupported URI scheme '{scheme}://' in {uri}: use a local path or s3://bucket/prefix"
        )
    return os.path.abspath(os.path.expanduser(uri))


def absolute(uri: str) -> str:
    """``uri`` as every process reads it the same: a local path made absolute (a Ray
    worker's working directory is not the driver's), an ``s3://`` URI unchanged.

    Stages resolve every URI option with this once, on the driver, before anything is
    handed to Ray; it is also the ``type=`` of those command-line options.
    """
    if is_s3(uri):
        _s3_path(uri)  # names a bucket, or fails here with the fix
        return uri.rstrip("/")
    return _local_path(uri)


AbsoluteUri = Annotated[str, AfterValidator(absolute)]
"""A URI field of a job model: resolved by ``absolute`` when the job is built."""


def uri_argument(value: str) -> str:
    """``absolute`` as an argparse ``type=``: a bad URI is a usage error naming the option."""
    import argparse

    try:
        return absolute(value)
    except NegrecError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_data_and_storage_arguments(parser: Any, kept: str) -> None:
    """``--data`` and ``--storage`` of the stages that train (``kept``: what the storage
    holds), both resolved by ``uri_argument``."""
    parser.add_argument(
        "--data", required=True, type=uri_argument, help="prepared dataset URI (local or s3://)"
    )
    parser.add_argument(
        "--storage", required=True, type=uri_argument, help=f"{kept} URI (local or s3://)"
    )


def _s3_path(uri: str) -> str:
    path = uri[len("s3://") :].strip("/")
    if not path or path.startswith("/"):
        raise NegrecError(f"{uri} names no bucket: use s3://bucket/prefix")
    return path


def _s3_filesystem(options: StorageOptions) -> pafs.S3FileSystem:
    kwargs: dict[str, Any] = {
        "connect_timeout": options.connect_timeout_s,
        "request_timeout": max(60.0, options.connect_timeout_s),
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=options.max_attempts),
    }
    if options.region:
        kwargs["region"] = options.region
    if options.endpoint_url:
        endpoint = urlparse(options.endpoint_url)
        if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
            raise NegrecError(
                f"S3 endpoint '{redact(options.endpoint_url)}' is not a URL: set "
                f"{ENDPOINT_ENV} to e.g. http://127.0.0.1:9000"
            )
        kwargs["endpoint_override"] = endpoint.netloc
        kwargs["scheme"] = endpoint.scheme
    return pafs.S3FileSystem(**kwargs)


def resolve(uri: str, options: StorageOptions | None = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the path inside it that ``uri`` names."""
    if is_s3(uri):
        return _s3_filesystem(_options(options)), _s3_path(uri)
    return pafs.LocalFileSystem(), _local_path(uri)


def join(uri: str, *parts: str) -> str:
    """``uri/part/part``: URIs use ``/`` on every platform and every scheme."""
    pieces = [uri.rstrip("/")] + [p.strip("/") for p in parts if p.strip("/")]
    return "/".join(pieces)


def uri_for(uri: str, path: str) -> str:
    """The URI of ``path`` in the filesystem ``uri`` resolved to, in ``uri``'s style."""
    return f"s3://{path}" if is_s3(uri) else path


def _parent_and_name(uri: str) -> tuple[str, str]:
    head, _, name = uri.rstrip("/").rpartition("/")
    if not name or (is_s3(uri) and "/" not in _s3_path(uri)):
        raise NegrecError(f"{uri} must be a prefix inside a bucket or directory, not its root")
    return head or ".", name


# --- errors -------------------------------------------------------------------------

_UNREACHABLE = (
    "NETWORK_CONNECTION",
    "Could not connect",
    "curlCode",
    "Couldn't resolve",
    "Timeout",
)
_DENIED = (
    "ACCESS_DENIED",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "EXPIRED_TOKEN",
    "InvalidToken",
    "UNRECOGNIZED_CLIENT",
)
_CREDENTIAL_FIX = (
    "check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN or "
    "AWS_PROFILE) and that they may read and write this prefix"
)


def describe_error(
    error: BaseException, uri: str, action: str, options: StorageOptions | None
) -> str:
    """A redacted one-line message for a failed storage call, with the likely fix."""
    detail = str(error)
    where = f"cannot {action} {uri}"
    if isinstance(error, FileNotFoundError):
        message = f"{where}: it does not exist; check the URI"
    elif is_s3(uri) and "NO_SUCH_BUCKET" in detail:
        bucket = _s3_path(uri).split("/", 1)[0]
        message = f"{where}: bucket '{bucket}' does not exist; create it or fix the URI"
    elif is_s3(uri) and any(token in detail for token in _UNREACHABLE):
        endpoint = _options(options).endpoint_url or "the default AWS endpoint"
        message = (
            f"{where}: S3 endpoint {endpoint} is unreachable; check {ENDPOINT_ENV} "
            f"(or AWS_ENDPOINT_URL) and that the server is up ({detail})"
        )
    elif is_s3(uri) and any(token in detail for token in _DENIED):
        message = f"{where}: access denied; {_CREDENTIAL_FIX} ({detail})"
    elif isinstance(error, PermissionError):
        message = f"{where}: permission denied; check the file permissions"
    else:
        message = f"{where}: {detail}"
    return redact(message)


@contextmanager
def translate_errors(
    uri: str, action: str, options: StorageOptions | None = None
) -> Iterator[None]:
    """Turn pyarrow/OS storage errors raised inside the block into a ``NegrecError``."""
    try:
        yield
    except NegrecError:
        raise
    except (OSError, pa.ArrowException) as error:
        if isinstance(error, pa.ArrowInvalid | pa.ArrowTypeError):
            raise  # data errors belong to the caller, not to storage
        raise NegrecError(describe_error(error, uri, action, options)) from None


# --- files --------------------------------------------------------------------------


def file_info(uri: str, options: StorageOptions | None = None) -> pafs.FileInfo:
    fs, path = resolve(uri, options)
    with translate_errors(uri, "inspect", options):
        return fs.get_file_info(path)


def exists(uri: str, options: StorageOptions | None = None) -> bool:
    return file_info(uri, options).type != pafs.FileType.NotFound


def _missing(uri: str, options: StorageOptions | None) -> NegrecError:
    """Why ``uri`` is not there: a missing bucket is a different fix from a missing key."""
    if is_s3(uri):
        bucket = _s3_path(uri).split("/", 1)[0]
        if not exists(f"s3://{bucket}", options):
            return NegrecError(
                f"{uri}: bucket '{bucket}' does not exist (or is not visible with these "
                "credentials); create it or fix the URI"
            )
    return NegrecError(f"{uri} does not exist; check the URI")


def _open_file(
    uri: str,
    options: StorageOptions | None,
    opener: Callable[[pafs.FileSystem, str], pa.NativeFile],
) -> pa.NativeFile:
    """Open ``uri`` with ``opener`` once it is known to be a file (else a clear error)."""
    fs, path = resolve(uri, options)
    with translate_errors(uri, "read", options):
        info = fs.get_file_info(path)
        if info.type != pafs.FileType.File:
            raise (
                _missing(uri, options)
                if info.type == pafs.FileType.NotFound
                else NegrecError(f"{uri} is a directory, not a file")
            )
        return opener(fs, path)


def open_input_stream(
    uri: str, options: StorageOptions | None = None, compression: str | None = "detect"
) -> pa.NativeFile:
    """A sequential reader; ``.gz``/``.bz2``/``.zst`` files are decompressed on the fly."""
    return _open_file(uri, options, lambda fs, path: fs.open_input_stream(path, compression))


def open_input_file(uri: str, options: StorageOptions | None = None) -> pa.NativeFile:
    """A random-access reader (Parquet needs one to read its footer)."""
    return _open_file(uri, options, lambda fs, path: fs.open_input_file(path))


def open_output_stream(uri: str, options: StorageOptions | None = None) -> pa.NativeFile:
    """A writer; local parent directories are created (S3 has none to create)."""
    fs, path = resolve(uri, options)
    with translate_errors(uri, "write", options):
        if not is_s3(uri):
            fs.create_dir(os.path.dirname(path), recursive=True)
        return fs.open_output_stream(path)


def read_bytes(uri: str, options: StorageOptions | None = None) -> bytes:
    with (
        open_input_stream(uri, options, compression=None) as stream,
        translate_errors(uri, "read", options),
    ):
        return stream.read()


def write_bytes(uri: str, data: bytes, options: StorageOptions | None = None) -> None:
    with open_output_stream(uri, options) as stream, translate_errors(uri, "write", options):
        stream.write(data)


def read_text(uri: str, options: StorageOptions | None = None) -> str:
    return read_bytes(uri, options).decode("utf-8")


def write_text(uri: str, text: str, options: StorageOptions | None = None) -> None:
    write_bytes(uri, text.encode("utf-8"), options)


def _hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def list_files(
    uri: str, suffix: str | tuple[str, ...] | None = None, options: StorageOptions | None = None
) -> list[str]:
    """Every file under ``uri`` (or ``uri`` itself if it is a file), as sorted URIs.

    Names starting with ``.`` or ``_`` (staging prefixes, ``_SUCCESS``) are skipped,
    as Spark and pyarrow datasets do. A missing ``uri`` raises ``NegrecError``.
    """
    fs, path = resolve(uri, options)
    with translate_errors(uri, "list", options):
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise _missing(uri, options)
        if info.type == pafs.FileType.File:
            found = [path]
        else:
            selector = pafs.FileSelector(path, recursive=True)
            found = [
                item.path
                for item in fs.get_file_info(selector)
                if item.type == pafs.FileType.File
                and not _hidden(item.path[len(path) :].lstrip("/"))
            ]
    if suffix is not None:
        found = [p for p in found if p.endswith(suffix)]
    return sorted(uri_for(uri, p) for p in found)


def delete_tree(uri: str, options: StorageOptions | None = None) -> None:
    """Delete a file or everything under a prefix; a missing ``uri`` is not an error."""
    if is_s3(uri) and "/" not in _s3_path(uri):
        raise NegrecError(f"refusing to delete the whole bucket {uri}; name a prefix inside it")
    fs, path = resolve(uri, options)
    with translate_errors(uri, "delete", options):
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(path)
        elif info.type == pafs.FileType.File:
            fs.delete_file(path)


# --- commit -------------------------------------------------------------------------


def staging_uri(final_uri: str) -> str:
    """A fresh hidden sibling of ``final_uri`` to write into before :func:`commit`."""
    parent, name = _parent_and_name(final_uri)
    return join(parent, f".{name}.staging-{uuid.uuid4().hex[:12]}")


def _is_empty(uri: str, options: StorageOptions | None) -> bool:
    info = file_info(uri, options)
    if info.type == pafs.FileType.NotFound:
        return True
    fs, path = resolve(uri, options)
    with translate_errors(uri, "list", options):
        selector = pafs.FileSelector(path, recursive=True)
        return not any(i.type == pafs.FileType.File for i in fs.get_file_info(selector))


def commit(
    staging: str, final_uri: str, marker: str, options: StorageOptions | None = None
) -> None:
    """Replace ``final_uri`` with the content of ``staging``, ``marker`` appearing last.

    Local: two renames (the old output moves aside, the staged one moves in). S3 has no
    rename: the old marker is deleted first (readers now see an incomplete output), the
    old objects are deleted, the staged objects are copied server-side with the marker
    copied last, and the staging prefix is deleted. A crash at any point leaves either
    the old complete output or a prefix without its marker, never a mix that looks
    complete. ``final_uri`` must be absent, empty or an earlier committed output (it
    holds ``marker``): anything else is refused rather than deleted.
    """
    if not exists(join(staging, marker), options):
        raise NegrecError(f"{staging} holds no {marker}: write the marker before commit")
    if not exists(join(final_uri, marker), options) and not _is_empty(final_uri, options):
        raise NegrecError(
            f"{final_uri} already holds files but no {marker}, so it is not an earlier "
            "negrec output; choose an empty or new location (nothing was deleted)"
        )
    if not is_s3(final_uri):
        fs, final_path = resolve(final_uri)
        _, staging_path = resolve(staging)
        with translate_errors(final_uri, "commit", options):
            old = None
            if fs.get_file_info(final_path).type != pafs.FileType.NotFound:
                old = staging_path + ".old"
                fs.move(final_path, old)
            fs.create_dir(os.path.dirname(final_path), recursive=True)
            fs.move(staging_path, final_path)
            if old is not None:
                fs.delete_dir(old)
        return
    delete_tree(join(final_uri, marker), options)
    delete_tree(final_uri, options)
    fs, staging_path = resolve(staging, options)
    _, final_path = resolve(final_uri, options)
    with translate_errors(final_uri, "commit", options):
        selector = pafs.FileSelector(staging_path, recursive=True)
        relatives = sorted(
            info.path[len(staging_path) + 1 :]
            for info in fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        )
        relatives.sort(key=lambda rel: rel == marker)  # the marker goes last
        for rel in relatives:
            fs.copy_file(f"{staging_path}/{rel}", f"{final_path}/{rel}")
    delete_tree(staging, options)


# --- other clients ------------------------------------------------------------------


def boto3_client(options: StorageOptions | None = None, service: str = "s3") -> Any:
    """A boto3 client on the same endpoint, region and timeouts as pyarrow uses."""
    import boto3
    from botocore.config import Config

    opts = _options(options)
    config = Config(
        connect_timeout=opts.connect_timeout_s,
        retries={"max_attempts": opts.max_attempts, "mode": "standard"},
    )
    return boto3.client(
        service, endpoint_url=opts.endpoint_url, region_name=opts.region, config=config
    )


def configure_environment(options: StorageOptions | None = None) -> dict[str, str]:
    """Export the endpoint and region for MLflow, boto3 and child processes (Ray workers).

    Returns the variables it set. Credentials are left to the AWS chain.
    """
    opts = _options(options)
    exported: dict[str, str] = {}
    if opts.endpoint_url:
        for name in (ENDPOINT_ENV, "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
            exported[name] = opts.endpoint_url
    if opts.region:
        exported["AWS_REGION"] = exported["AWS_DEFAULT_REGION"] = opts.region
    os.environ.update(exported)
    return exported
