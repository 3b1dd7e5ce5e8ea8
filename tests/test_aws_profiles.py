"""S3 credentials, regions and endpoints from the AWS shared files (``~/.aws/credentials`` and
``~/.aws/config``), chosen as botocore chooses them: a local server records the requests
oxzarr signs (the key and region in their signature, their session token), and moto's server
stores what oxzarr and zarr-python (through s3fs and botocore) write and read with the same
profile."""

from __future__ import annotations

import re
import shlex
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import oxzarr
from oxzarr.errors import ArrayNotFoundError
from tests.conftest import assert_same, s3_client, sample

_MISSING = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Error><Code>NoSuchKey</Code><Message>missing</Message></Error>"
)


class _Recorder:
    """A server that answers every request with S3's "no such key" and keeps its headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(404)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(_MISSING)))
                self.end_headers()
                self.wfile.write(_MISSING)

            do_HEAD = do_PUT = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def signed(self) -> tuple[str | None, str | None, str | None]:
        """The access key and region of the first request's signature, and its token."""
        assert self.headers, "no request reached the server"
        first = self.headers[0]
        found = re.search(r"Credential=([^/]+)/\d+/([^/]+)/s3/", first.get("authorization", ""))
        key, region = found.groups() if found else (None, None)
        return key, region, first.get("x-amz-security-token")


@pytest.fixture
def recorders() -> Iterator[Callable[[], _Recorder]]:
    made: list[_Recorder] = []

    def make() -> _Recorder:
        made.append(_Recorder())
        return made[-1]

    yield make
    for recorder in made:
        recorder.close()


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Writes the AWS shared files of a test (and clears the ``AWS_*`` environment)."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))

    def write(credentials: str = "", config: str = "") -> None:
        (tmp_path / ".aws").mkdir(exist_ok=True)
        (tmp_path / ".aws" / "credentials").write_text(credentials)
        (tmp_path / ".aws" / "config").write_text(config)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / ".aws" / "credentials"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / ".aws" / "config"))

    return write


def _signed_by(recorder: _Recorder, **options: Any) -> tuple[str | None, str | None, str | None]:
    """Opens an array at the recorder (which has none) and returns how the request was signed."""
    options.setdefault("endpoint_url", recorder.url)
    with pytest.raises(ArrayNotFoundError):
        oxzarr.open_array("s3://bucket/a.zarr", mode="r", storage_options=options)
    return recorder.signed()


DEFAULT = "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n"
WORK = "[work]\naws_access_key_id = AKWORK\naws_secret_access_key = s2\naws_session_token = t2\n"


def test_the_default_profile_signs(aws: Callable[..., None], recorders: Any) -> None:
    aws(DEFAULT, "[default]\nregion = eu-west-3\n")
    assert _signed_by(recorders()) == ("AKDEFAULT", "eu-west-3", None)


def test_a_profile_named_in_the_environment(
    aws: Callable[..., None], recorders: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws(DEFAULT + WORK, "[default]\nregion = eu-west-3\n[profile work]\nregion = ap-south-1\n")
    monkeypatch.setenv("AWS_PROFILE", "work")
    assert _signed_by(recorders()) == ("AKWORK", "ap-south-1", "t2")
    # The region given, and the environment's, come before the profile's.
    assert _signed_by(recorders(), region="us-west-2")[1] == "us-west-2"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ca-central-1")
    assert _signed_by(recorders())[1] == "ca-central-1"


def test_the_environment_and_storage_options_come_first(
    aws: Callable[..., None], recorders: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws(DEFAULT + WORK)
    monkeypatch.setenv("AWS_PROFILE", "work")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3")
    # botocore: the environment's keys over a profile named in the environment ...
    assert _signed_by(recorders()) == ("AKENV", "us-east-1", None)
    # ... but a profile named in the storage options over the environment's keys ...
    assert _signed_by(recorders(), profile="default")[0] == "AKDEFAULT"
    # ... and keys given over everything.
    assert _signed_by(recorders(), profile="work", key="AKGIVEN", secret="x") == (
        "AKGIVEN",
        "us-east-1",
        None,
    )


def test_keys_given_go_without_the_environments_token(
    aws: Callable[..., None], recorders: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session token belongs to its key: the environment's is not sent with another."""
    aws()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "tenv")
    assert _signed_by(recorders()) == ("AKENV", "us-east-1", "tenv")
    assert _signed_by(recorders(), key="AKGIVEN", secret="x") == ("AKGIVEN", "us-east-1", None)
    assert _signed_by(recorders(), key="AKGIVEN", secret="x", token="tgiven")[2] == "tgiven"


def test_the_credentials_file_before_the_config_file(
    aws: Callable[..., None], recorders: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = (
        "[default]\naws_access_key_id = AKCONFIG\naws_secret_access_key = c\n"
        "[profile only-config]\naws_access_key_id = AKONLYCONFIG\naws_secret_access_key = c\n"
    )
    aws(DEFAULT, config)
    assert _signed_by(recorders())[0] == "AKDEFAULT"
    assert _signed_by(recorders(), profile="only-config")[0] == "AKONLYCONFIG"
    # A process the profile names runs after the credentials file, before the config file.
    aws(DEFAULT.replace("[default]", "[default]\ncredential_process = /bin/false"), config)
    assert _signed_by(recorders())[0] == "AKDEFAULT"


def test_endpoints_from_the_profile_and_the_environment(
    aws: Callable[..., None], recorders: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile_endpoint, services_endpoint, env_endpoint = recorders(), recorders(), recorders()
    config = f"[default]\nendpoint_url = {profile_endpoint.url}\n"
    aws(DEFAULT, config)
    _signed_by(profile_endpoint, endpoint_url=None)
    assert len(profile_endpoint.headers) > 0

    # A services section's s3 endpoint comes before the profile's own.
    aws(
        DEFAULT,
        config
        + "services = local\n"
        + f"[services local]\ns3 =\n  endpoint_url = {services_endpoint.url}\n",
    )
    _signed_by(services_endpoint, endpoint_url=None)
    assert len(services_endpoint.headers) > 0

    # The environment's S3 endpoint comes before both.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", env_endpoint.url)
    _signed_by(env_endpoint, endpoint_url=None)
    assert len(env_endpoint.headers) > 0
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")

    # Configured endpoints can be switched off, as in botocore: the profile's and the
    # environment's (AWS_ENDPOINT_URL_S3 was still taken, and the engine read
    # AWS_ENDPOINT_URL itself).
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "True")
    assert "aws_endpoint" not in dict(oxzarr.storage.remote_options("s3://bucket", {}))
    for variable in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(variable, env_endpoint.url)
        assert "aws_endpoint" not in dict(oxzarr.storage.remote_options("s3://bucket", {}))
        monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_ENDPOINT_URL", env_endpoint.url)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")  # else refused before any request
    seen = len(env_endpoint.headers)
    with pytest.raises(OSError):  # AWS itself: unreachable here, or refusing the bucket
        oxzarr.open_array("s3://bucket/a.zarr", mode="r")
    assert len(env_endpoint.headers) == seen


def test_an_http_endpoint_from_the_environment_alone(
    aws: Callable[..., None], recorders: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No AWS files: the environment's endpoint (plain http, as MinIO's and moto's) is taken
    # as botocore takes it. The engine read it, but refused http ("URL scheme is not
    # allowed"). An upper-case scheme in the storage options is http too.
    keys = {"key": "AKENV", "secret": "s"}
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        recorder = recorders()
        monkeypatch.setenv(variable, recorder.url)
        assert _signed_by(recorder, endpoint_url=None, **keys)[0] == "AKENV"
        monkeypatch.delenv(variable)
    recorder = recorders()
    upper = recorder.url.replace("http://", "HTTP://")
    assert _signed_by(recorder, endpoint_url=upper, **keys)[0] == "AKENV"


def test_anonymous_requests_take_no_credentials(aws: Callable[..., None], recorders: Any) -> None:
    aws(DEFAULT)
    recorder = recorders()
    _signed_by(recorder, anon=True)
    assert "authorization" not in recorder.headers[0]


def _keys_script(tmp_path: Path, expires_in_minutes: int | None = 60) -> str:
    """A credential_process command: each run is counted in `runs` beside it and prints keys
    numbered by the runs so far, with a session token and an expiration."""
    script = tmp_path / "keys helper.py"
    script.write_text(
        "import datetime, json, pathlib, sys\n"
        "runs = pathlib.Path(sys.argv[0]).with_name('runs')\n"
        "n = len(runs.read_text()) + 1 if runs.exists() else 1\n"
        "runs.write_text('x' * n)\n"
        "doc = {'Version': 1, 'AccessKeyId': f'AKPROC{n}', 'SecretAccessKey': 's',\n"
        "       'SessionToken': sys.argv[1]}\n"
        f"minutes = {expires_in_minutes!r}\n"
        "if minutes is not None:\n"
        "    now = datetime.datetime.now(datetime.timezone.utc)\n"
        "    doc['Expiration'] = (now + datetime.timedelta(minutes=minutes)).isoformat()\n"
        "print(json.dumps(doc))\n"
    )
    # Quoted as a shell would take it, since the path has a space: botocore splits the
    # command with shlex.
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} 'token of p'"


def test_a_credential_process_signs(
    aws: Callable[..., None], recorders: Any, tmp_path: Path
) -> None:
    """A profile's credential_process gives the keys, as botocore runs it: after the
    credentials file's keys, before the config file's."""
    command = _keys_script(tmp_path)
    aws("", f"[profile p]\nregion = eu-north-1\ncredential_process = {command}\n")
    assert _signed_by(recorders(), profile="p") == ("AKPROC1", "eu-north-1", "token of p")
    aws("", f"[default]\ncredential_process = {command}\n" + DEFAULT[10:])
    assert _signed_by(recorders())[0] == "AKPROC2"


@pytest.mark.parametrize(
    ("expires_in", "keys"),
    [(60, ["AKPROC1"] * 3), (2, ["AKPROC1", "AKPROC2", "AKPROC3"]), (None, ["AKPROC1"] * 3)],
)
def test_a_credential_process_runs_again_before_its_keys_expire(
    aws: Callable[..., None],
    recorders: Any,
    tmp_path: Path,
    expires_in: int | None,
    keys: list[str],
) -> None:
    """One store runs the command once while its keys last (for good without an expiration),
    and again for each request once they are within minutes of expiring."""
    aws("", f"[default]\ncredential_process = {_keys_script(tmp_path, expires_in)}\n")
    recorder = recorders()
    store = oxzarr.storage.RemoteStore(
        "s3://bucket/x", storage_options={"endpoint_url": recorder.url}
    )
    for key in ("a", "b", "c"):
        assert store.get(key) is None
    signed = [
        re.search(r"Credential=([^/]+)/", h["authorization"]).group(1) for h in recorder.headers
    ]
    assert signed == keys


def test_a_failing_credential_process_is_reported(
    aws: Callable[..., None], recorders: Any, tmp_path: Path
) -> None:
    script = tmp_path / "fails.py"
    script.write_text(
        "import sys\nprint('run aws sso login first', file=sys.stderr)\nsys.exit(2)\n"
    )
    aws("", f"[profile work]\ncredential_process = {sys.executable} {script}\n")
    with pytest.raises(OSError, match=r"profile 'work' failed .*run aws sso login first"):
        oxzarr.open_array(
            "s3://bucket/a.zarr",
            mode="r",
            storage_options={"profile": "work", "endpoint_url": recorders().url},
        )


ROLE = (
    "[profile role]\nrole_arn = arn:aws:iam::123456789012:role/reader\nsource_profile = base\n"
    "region = us-east-1\n"
)
SSO = (
    "[profile sso]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = r\n"
    "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n"
)


def test_a_role_is_assumed_through_botocore(
    aws: Callable[..., None], recorders: Any, s3_endpoint: str
) -> None:
    """botocore assumes the profile's role (at moto's STS) and the engine signs with the
    keys it gets."""
    recorder = recorders()
    services = (
        "services = local\n"
        f"[services local]\nsts =\n  endpoint_url = {s3_endpoint}\n"
        f"s3 =\n  endpoint_url = {recorder.url}\n"
    )
    aws("[base]\naws_access_key_id = AKBASE\naws_secret_access_key = b\n", ROLE + services)
    key, _, token = _signed_by(recorder, profile="role", endpoint_url=None)
    # moto's STS hands out temporary keys ("ASIA...") with a session token.
    assert key is not None and key.startswith("ASIA") and token


def test_what_stops_botocore_is_reported(aws: Callable[..., None], recorders: Any) -> None:
    aws("", SSO)
    with pytest.raises(OSError, match=r"botocore, getting the keys of the AWS profile 'sso' .*SSO"):
        oxzarr.open_array(
            "s3://bucket/a.zarr",
            mode="r",
            storage_options={"profile": "sso", "endpoint_url": recorders().url},
        )


@pytest.mark.parametrize(("config", "setting"), [(ROLE, "role_arn"), (SSO, "sso_session")])
def test_without_botocore_roles_and_single_sign_on_are_refused(
    aws: Callable[..., None], monkeypatch: pytest.MonkeyPatch, config: str, setting: str
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "botocore" else find_spec(name)
    )
    aws("", config)
    profile = config.split("]")[0].split()[-1]
    with pytest.raises(ValueError, match=f"{setting}.*install botocore"):
        oxzarr.storage.remote_options("s3://bucket", {"profile": profile})


@pytest.mark.parametrize(
    ("credentials", "config", "options", "message"),
    [
        ("", "", {"profile": "missing"}, "AWS profile 'missing' is in neither"),
        ("", "[default]\ncredential_process = 'unclosed\n", {}, "cannot be split into words"),
        ("", "[default]\ncredential_process =\n", {}, "credential_process of the AWS profile"),
        ("[default]\naws_access_key_id = AK\n", "", {}, "no aws_secret_access_key"),
        ("[default\naws_access_key_id = AK\n", "", {}, "cannot be read"),
    ],
)
def test_profiles_oxzarr_cannot_use_are_refused(
    aws: Callable[..., None], credentials: str, config: str, options: Any, message: str
) -> None:
    aws(credentials, config)
    with pytest.raises(ValueError, match=re.escape(message)):
        oxzarr.open_array(
            "s3://bucket/a.zarr", mode="r", storage_options={**options, "endpoint_url": "x"}
        )


def test_a_profile_named_in_the_environment_must_exist(
    aws: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    aws(DEFAULT)
    monkeypatch.setenv("AWS_PROFILE", "nowhere")
    with pytest.raises(ValueError, match="'nowhere'"):
        oxzarr.storage.remote_options("s3://bucket", {"key": "k", "secret": "s"})
    # Web servers take no AWS settings.
    assert oxzarr.storage.remote_options("https://host/x", {}) == []


@pytest.mark.parametrize(
    "keys", ["in the credentials file", "from a credential_process", "from a role"]
)
def test_zarr_python_and_oxzarr_share_a_profile(
    aws: Callable[..., None],
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    keys: str,
) -> None:
    """Both reach moto through a profile alone: keys, region and endpoint from the files."""
    import uuid

    bucket = f"test-{uuid.uuid4().hex[:16]}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    config = f"[profile moto]\nregion = us-east-1\nendpoint_url = {s3_endpoint}\n"
    if keys == "in the credentials file":
        aws("[moto]\naws_access_key_id = testing\naws_secret_access_key = testing\n", config)
    elif keys == "from a credential_process":
        aws("", config + f"credential_process = {_keys_script(tmp_path)}\n")
    else:
        # botocore assumes the role at moto's STS for both (s3fs uses it too).
        aws(
            "[base]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
            config + "role_arn = arn:aws:iam::123456789012:role/writer\nsource_profile = base\n",
        )
    values = sample((40, 30), "int32")
    a = oxzarr.create_array(
        f"s3://{bucket}/ox.zarr",
        shape=values.shape,
        dtype=values.dtype,
        chunks=(16, 16),
        storage_options={"profile": "moto"},
    )
    a[...] = values
    theirs = zarr.open_array(
        f"s3://{bucket}/ox.zarr", mode="r", storage_options={"profile": "moto"}
    )
    assert_same(theirs[...], values)

    z = zarr.create_array(
        f"s3://{bucket}/zp.zarr",
        shape=(25,),
        dtype="f8",
        chunks=(10,),
        storage_options={"profile": "moto"},
    )
    z[...] = np.arange(25.0)
    # Named in the environment only, with no storage options at all.
    monkeypatch.setenv("AWS_PROFILE", "moto")
    assert_same(oxzarr.open_array(f"s3://{bucket}/zp.zarr", mode="r")[...], np.arange(25.0))


def test_the_metadata_service_is_not_asked_when_disabled(
    aws: Callable[..., None], recorders: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No credentials anywhere: the instance metadata service is the last place to look, unless
    # AWS_EC2_METADATA_DISABLED says not to (as in botocore).
    aws()
    service, metadata = recorders(), recorders()
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", metadata.url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(PermissionError, match="AWS_EC2_METADATA_DISABLED") as raised:
        oxzarr.open_array(
            "s3://bucket/a.zarr", mode="r", storage_options={"endpoint_url": service.url}
        )
    assert "s3://bucket/a.zarr" in str(raised.value)
    assert metadata.headers == [] and service.headers == []
    # Public buckets are still read anonymously.
    _signed_by(service, anon=True)
    assert "authorization" not in service.headers[0]
    # Without the variable, the service is asked (what the test above relies on).
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    with pytest.raises(OSError):
        oxzarr.open_array(
            "s3://bucket/a.zarr", mode="r", storage_options={"endpoint_url": service.url}
        )
    assert metadata.headers != []
