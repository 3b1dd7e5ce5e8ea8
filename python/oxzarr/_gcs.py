"""Google Cloud Storage settings: gcsfs's ``storage_options`` in the engine's names, and the
credentials gcsfs would use when none are given.

zarr-python reaches ``gs://`` URLs through gcsfs; users write its options (``token``,
``endpoint_url``, ``project``, ...). This module turns them into object_store's
(``google_service_account``, ``google_base_url``, ``google_skip_signature``, ...), which the
engine checks, so that a URL opens with the same credentials in both:

- ``token="anon"``: no credentials (public buckets); a path to a JSON key file or a dict of
  one: a service account's key, or the authorized-user file ``gcloud auth
  application-default login`` writes; ``"google_default"`` or ``"cloud"``: the application
  default credentials, then the machine's metadata service;
- ``token=None`` (gcsfs's default): the same as ``"google_default"`` where there are
  credentials to find (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's application default
  credentials file, a Google Cloud machine), and anonymous otherwise, as gcsfs falls back;
- the endpoint: ``endpoint_url``, else ``STORAGE_EMULATOR_HOST`` (gcsfs's and Google's
  client's variable for an emulator).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The engine's names of the settings this module fills in.
BASE_URL, SKIP_SIGNATURE = "google_base_url", "google_skip_signature"
SERVICE_ACCOUNT, SERVICE_ACCOUNT_KEY = "google_service_account", "google_service_account_key"
APPLICATION_CREDENTIALS = "google_application_credentials"

#: The engine's names (object_store's, with their aliases) of settings that say where
#: credentials come from, or that there are none.
_CREDENTIAL_OPTIONS = frozenset(
    {
        SERVICE_ACCOUNT,
        "service_account",
        "google_service_account_path",
        "service_account_path",
        SERVICE_ACCOUNT_KEY,
        "service_account_key",
        APPLICATION_CREDENTIALS,
        "application_credentials",
        "google_bearer_token",
        "bearer_token",
        SKIP_SIGNATURE,
        "skip_signature",
    }
)

#: gcsfs options about what it does itself (caches, checks after writes, buckets it creates,
#: the project it bills listings of buckets to, the scope it asks a token for): nothing they
#: set changes a read of objects.
_GCSFS_ONLY = frozenset(
    {
        "project",
        "access",
        "consistency",
        "cache_timeout",
        "block_size",
        "secure_serialize",
        "check_connection",
        "default_location",
        "requests_timeout",
    }
)

#: The file ``gcloud auth application-default login`` writes, under gcloud's folder.
_ADC_FILE = "application_default_credentials.json"


def _gcloud_folder() -> Path:
    configured = os.environ.get("CLOUDSDK_CONFIG")
    return Path(configured) if configured else Path.home() / ".config" / "gcloud"


def _on_google_cloud() -> bool:
    """Whether this process runs on Google Cloud, where the metadata service gives tokens:
    a Compute Engine machine (GKE's nodes are) names Google as its product; Cloud Run and
    Cloud Functions set these variables. Nothing is asked of the network."""
    if any(os.environ.get(name) for name in ("K_SERVICE", "CLOUD_RUN_JOB", "GCE_METADATA_HOST")):
        return True
    try:
        product = Path("/sys/class/dmi/id/product_name").read_text(errors="replace")
    except OSError:
        return False
    return product.strip().startswith("Google")


def _key_file_options(path: str, url: str) -> dict[str, str]:
    """The options of a JSON key file `path`: a service account's, or gcloud's
    application default credentials."""
    try:
        with open(path, encoding="utf-8") as f:
            kind = json.load(f).get("type")
    except FileNotFoundError:
        raise FileNotFoundError(f"token file {path!r} for {url} does not exist") from None
    except OSError as e:
        raise OSError(f"cannot read token file {path!r} for {url}: {e}") from None
    except (ValueError, AttributeError) as e:
        raise ValueError(f"token file {path!r} for {url} is not a JSON key file: {e}") from None
    if kind == "service_account":
        return {SERVICE_ACCOUNT: path}
    if kind == "authorized_user":
        return {APPLICATION_CREDENTIALS: path}
    raise ValueError(
        f"token file {path!r} for {url} holds credentials of type {kind!r}: oxzarr takes a "
        "service account's key or gcloud's application default credentials"
    )


def _token_options(token: Any, url: str) -> dict[str, str] | None:
    """The options of gcsfs's ``token``; None for gcsfs's default: credentials where they
    are found, else none."""
    if token is None:
        return None
    if token in ("google_default", "cloud"):
        # The engine looks: the application default credentials, then the metadata service.
        return {}
    if token == "anon":
        return {SKIP_SIGNATURE: "true"}
    if token in ("cache", "browser"):
        raise ValueError(
            f"token={token!r} for {url} is gcsfs's own login, which oxzarr cannot use: run "
            "`gcloud auth application-default login` and leave token unset, or pass the path "
            "of a key file"
        )
    if isinstance(token, str | os.PathLike):
        return _key_file_options(os.fspath(token), url)
    if isinstance(token, Mapping):
        if token.get("type") == "service_account":
            return {SERVICE_ACCOUNT_KEY: json.dumps(dict(token))}
        raise ValueError(
            f"token for {url} is a dict of credentials of type {token.get('type')!r}: as a "
            "dict, oxzarr takes a service account's key; pass other key files by their path"
        )
    raise ValueError(
        f"token of type {type(token).__name__} for {url}: oxzarr takes 'anon', "
        "'google_default', 'cloud', a key file's path or a service account key as a dict "
        "(not a google.auth Credentials object)"
    )


def _found_credentials() -> dict[str, str] | None:
    """Where the credentials are when none were given, as gcsfs's ``token=None`` looks:
    ``GOOGLE_APPLICATION_CREDENTIALS`` or another ``GOOGLE_*`` setting the engine reads,
    gcloud's file, the metadata service; None if there are none (then gcsfs goes anonymous)."""
    engine_reads = ("GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_PATH", "SERVICE_ACCOUNT")
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or any(
        os.environ.get(name) for name in (*engine_reads, "GOOGLE_SERVICE_ACCOUNT_KEY")
    ):
        return {}
    adc = _gcloud_folder() / _ADC_FILE
    if adc.is_file():
        # Named here: the engine looks for it under HOME only, not under CLOUDSDK_CONFIG.
        return {APPLICATION_CREDENTIALS: str(adc)}
    if _on_google_cloud():
        return {}
    return None


def options(url: str, storage_options: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's options for the ``gs://`` URL `url` from gcsfs-style `storage_options`
    (fsspec's own options and None values already taken out); object_store's own names pass
    with their values as given, for the caller to write as text."""
    found: dict[str, Any] = {}
    token: Any = None
    for name, value in storage_options.items():
        if name == "token":
            token = value
        elif name == "endpoint_url":
            found[BASE_URL] = str(value).rstrip("/")
        elif name in ("requester_pays", "version_aware", "session_kwargs"):
            if value:
                raise ValueError(f"unsupported storage option {name}={value!r} for {url}")
        elif name not in _GCSFS_ONLY:
            found[name.lower()] = value
    if BASE_URL not in found and "base_url" not in found:
        emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
        if emulator not in ("", "default"):
            has_scheme = emulator.startswith(("http://", "https://"))
            found[BASE_URL] = (emulator if has_scheme else f"http://{emulator}").rstrip("/")
    given = _token_options(token, url)
    if given is not None:
        found.update(given)
    elif not _CREDENTIAL_OPTIONS.intersection(found):
        credentials = _found_credentials()
        found.update({SKIP_SIGNATURE: "true"} if credentials is None else credentials)
    return found
