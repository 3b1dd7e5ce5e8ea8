"""The keys botocore finds for an AWS profile, printed as a ``credential_process`` prints
them: ``python _botocore_keys.py PROFILE`` (a script of its own, which imports nothing of
oxzarr).

The engine runs this for a profile that gets its keys in a way only botocore follows (a role
to assume, single sign-on, a web identity), as it runs a profile's own ``credential_process``:
again before the keys expire. So oxzarr gets the keys zarr-python gets through s3fs, which
uses botocore too.
"""

from __future__ import annotations

import datetime
import json
import sys


def print_profile_keys(profile: str) -> int:
    """Prints the keys botocore finds for `profile` as a ``credential_process`` prints them
    (a JSON document, with the keys' expiration when they have one); returns the exit
    status. Whatever stops botocore (an expired single sign-on login, a role it may not
    assume) goes to standard error in its own words."""
    try:
        import botocore.session  # type: ignore[import-untyped]

        found = botocore.session.Session(profile=profile).get_credentials()
        if found is None:
            print(f"botocore finds no credentials for the AWS profile {profile!r}", file=sys.stderr)
            return 1
        keys = found.get_frozen_credentials()
    except Exception as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    doc = {"Version": 1, "AccessKeyId": keys.access_key, "SecretAccessKey": keys.secret_key}
    if keys.token:
        doc["SessionToken"] = keys.token
    # Refreshable credentials (roles, single sign-on) know when they expire; should a
    # botocore keep that elsewhere, they are asked for again in a quarter of an hour.
    expires = getattr(found, "_expiry_time", None)
    if expires is None and hasattr(found, "refresh_needed"):
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=15)
    if expires is not None:
        doc["Expiration"] = expires.isoformat()
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python _botocore_keys.py PROFILE")
    sys.exit(print_profile_keys(sys.argv[1]))
