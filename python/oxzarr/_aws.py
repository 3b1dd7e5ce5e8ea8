"""S3 settings from the AWS shared files, ``~/.aws/credentials`` and ``~/.aws/config``.

The engine's S3 client reads the ``AWS_*`` environment variables and the machine's metadata
services, but not these files, where most people keep their keys, regions and endpoints
(``aws configure`` writes them). zarr-python reaches S3 through s3fs and botocore, which read
them; this module reads them the way botocore does, so that a URL opens with the same
credentials in both:

- the profile is the ``profile`` storage option (s3fs's name), else ``AWS_PROFILE``, else
  ``default``; a profile named either way must exist;
- credentials given in ``storage_options`` come first. Then, unless the profile was named in
  ``storage_options``, those of the environment; then the profile's: its keys in the
  credentials file, else its ``credential_process`` (a command that prints keys, which the
  engine runs again before they expire), else its keys in the config file. A profile that
  gets its credentials some other way (a role to assume, single sign-on, a web identity) gets
  them from botocore itself, run as the profile's process (``oxzarr/_botocore_keys.py
  PROFILE``); without botocore installed, such a profile is refused with a ValueError rather
  than left to fall through to other credentials;
- the region: ``storage_options``, then ``AWS_REGION``/``AWS_DEFAULT_REGION``, then the
  profile's ``region``;
- the endpoint: ``storage_options``, then ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, then
  the profile's ``services`` section's ``s3`` endpoint, then its ``endpoint_url``.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

#: The engine's names of the settings this module fills in.
KEY, SECRET, TOKEN = "aws_access_key_id", "aws_secret_access_key", "aws_session_token"
REGION, ENDPOINT = "aws_region", "aws_endpoint"
#: The engine's option that names a command to get keys from (see its `credential_process`).
PROCESS = "oxzarr_credential_process"

#: Other names the engine takes for those settings.
ALIASES = {
    "access_key_id": KEY,
    "secret_access_key": SECRET,
    "aws_token": TOKEN,
    "session_token": TOKEN,
    "aws_default_region": REGION,
    "default_region": REGION,
    "aws_endpoint_url": ENDPOINT,
    "endpoint": ENDPOINT,
    "skip_signature": "aws_skip_signature",
}

#: Settings by which botocore gets a profile's credentials ahead of any keys written in it.
_FIRST_ELSEWHERE = (
    "role_arn",
    "web_identity_token_file",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
)

_Sections = dict[str, dict[str, str]]


def _read(path: Path) -> _Sections:
    """The sections of an AWS shared file, or none if there is no such file."""
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError:
        return {}
    except (configparser.Error, UnicodeDecodeError) as e:
        raise ValueError(f"the AWS shared file {path} cannot be read: {e}") from None
    return {name: dict(parser.items(name)) for name in parser.sections()}


def _nested(value: str) -> dict[str, str]:
    """A nested section's settings: ``s3 =`` followed by indented ``name = value`` lines."""
    settings = {}
    for line in value.splitlines():
        name, sep, text = line.partition("=")
        if sep:
            settings[name.strip().lower()] = text.strip()
    return settings


def _profile_sections(config: _Sections) -> dict[str, dict[str, str]]:
    """The config file's profiles by name: ``[default]``, or ``[profile NAME]``."""
    profiles: dict[str, dict[str, str]] = {}
    for section, settings in config.items():
        if section == "default":
            profiles.setdefault("default", {}).update(settings)
        elif section.startswith("profile "):
            profiles.setdefault(section[len("profile ") :].strip(), {}).update(settings)
    return profiles


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def endpoints_ignored(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment switches configured endpoints off, as botocore reads it."""
    return _is_true(environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"))


def profile_options(
    options: Mapping[str, str],
    profile: str | None,
    anonymous: bool,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """The engine's S3 options that the AWS shared files add to `options` (the options given,
    in the engine's names): credentials, region and endpoint, each only where neither
    `options` nor the environment has it. `profile` is the profile named in the storage
    options; `anonymous` requests are sent unsigned, so they take no credentials."""
    home = Path.home
    credentials_path = Path(
        environ.get("AWS_SHARED_CREDENTIALS_FILE") or home() / ".aws" / "credentials"
    ).expanduser()
    config_path = Path(environ.get("AWS_CONFIG_FILE") or home() / ".aws" / "config").expanduser()
    named = profile or environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE")
    name = named or "default"

    config = _read(config_path)
    in_config = _profile_sections(config).get(name)
    in_credentials = _read(credentials_path).get(name)
    if in_config is None and in_credentials is None:
        if named:
            raise ValueError(
                f"the AWS profile {name!r} is in neither {credentials_path} nor {config_path}"
            )
        return {}
    in_config = in_config or {}
    in_credentials = in_credentials or {}
    # botocore reads one profile merged from both files, the credentials file's settings over
    # the config file's.
    merged = {**in_config, **in_credentials}
    added: dict[str, str] = {}

    # A profile named in the storage options is chosen over the environment's credentials.
    env_keys = bool(environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"))
    env_first = profile is None and (
        env_keys or bool(environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") and environ.get("AWS_ROLE_ARN"))
    )
    if not anonymous and KEY not in options and not env_first:
        elsewhere = [s for s in _FIRST_ELSEWHERE if s in merged]
        source = next((s for s in (in_credentials, in_config) if KEY in s), None)
        # botocore runs a profile's process after reading the credentials file's keys, and
        # before the config file's.
        if not elsewhere and KEY not in in_credentials and "credential_process" in merged:
            command = merged["credential_process"]
            try:
                argv = shlex.split(command)
            except ValueError as e:
                raise ValueError(
                    f"the credential_process of the AWS profile {name!r} cannot be split into "
                    f"words ({e}): {command!r}"
                ) from None
            if not argv:
                raise ValueError(f"the credential_process of the AWS profile {name!r} is empty")
            what = f"the credential_process of the AWS profile {name!r}"
            added[PROCESS] = json.dumps({"source": what, "argv": argv})
            source = None
        if elsewhere:
            if importlib.util.find_spec("botocore") is None or not sys.executable:
                raise ValueError(
                    f"the AWS profile {name!r} gets its credentials through "
                    f"{elsewhere[0]!r}, which oxzarr follows through botocore: install "
                    "botocore, give key and secret in storage_options, or put them in the "
                    f"environment (aws configure export-credentials --profile {name} "
                    "--format env)"
                )
            # botocore follows the profile (assumes the role, reads the single sign-on
            # token), run as the profile's process, so that the engine asks again before
            # the keys expire.
            # Run by its path: the script needs nothing of oxzarr, whose import (numpy, the
            # engine) would only slow each refresh down.
            helper = Path(__file__).with_name("_botocore_keys.py")
            argv = [sys.executable, os.fspath(helper), name]
            what = f"botocore, getting the keys of the AWS profile {name!r} ({elsewhere[0]}),"
            added[PROCESS] = json.dumps({"source": what, "argv": argv})
            source = None
        if source is not None:
            if not source.get(SECRET):
                raise ValueError(
                    f"the AWS profile {name!r} has {KEY} but no {SECRET} "
                    f"(in {credentials_path if source is in_credentials else config_path})"
                )
            added[KEY], added[SECRET] = source[KEY], source[SECRET]
            token = source.get(TOKEN) or source.get("aws_security_token")
            if token:
                added[TOKEN] = token

    if REGION not in options and not (
        environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    ):
        if merged.get("region"):
            added[REGION] = merged["region"]

    ignored = endpoints_ignored(environ) or _is_true(merged.get("ignore_configured_endpoint_urls"))
    if ENDPOINT not in options and not ignored:
        if environ.get("AWS_ENDPOINT_URL_S3"):
            added[ENDPOINT] = environ["AWS_ENDPOINT_URL_S3"]
        elif not (environ.get("AWS_ENDPOINT_URL") or environ.get("AWS_ENDPOINT")):
            services = config.get(f"services {merged.get('services', '').strip()}", {})
            endpoint = _nested(services.get("s3", "")).get("endpoint_url") or merged.get(
                "endpoint_url"
            )
            if endpoint:
                added[ENDPOINT] = endpoint
    return added
