"""AWS credentials for the Auto Scaling group backends: the session on the standard
chain, the credentials it signs with now, and what each signed request carries.

Its own room because where credentials come from, and keeping them out of every text
(common.secrets), is apart from sizing a group (backends.aws_asg).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from common.secrets import remember

if TYPE_CHECKING:  # boto3 is the [aws] extra: imported when a group is used, not on load
    import boto3

_SIGNED_KEY_ID = re.compile(r"Credential=([^/,\s]+)/")


def aws_session(region: str | None, env: Mapping[str, str]) -> boto3.Session:
    """A boto3 session on the standard credential chain, preferring keys found in `env`.
    No region or no such profile: ValueError, which the start and validate place at the
    backend (boto3's own errors ended both in a traceback)."""
    import boto3
    import botocore.exceptions

    region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    try:
        if key_id and secret:
            session = boto3.Session(
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
                region_name=region,
            )
        else:
            session = boto3.Session(region_name=region, profile_name=env.get("AWS_PROFILE") or None)
    except botocore.exceptions.ProfileNotFound:
        raise ValueError(
            f"AWS profile {env.get('AWS_PROFILE')!r} ($AWS_PROFILE) not found"
        ) from None
    if session.region_name is None:
        raise ValueError("no AWS region: set region (nomad_cluster: aws_region) or $AWS_REGION")
    return session


def frozen_credentials(session: boto3.Session) -> tuple[str | None, ...] | None:
    """The credentials `session` signs with now; None where the chain gives none."""
    import botocore.exceptions

    try:
        credentials = session.get_credentials()
        return None if credentials is None else tuple(credentials.get_frozen_credentials())
    except botocore.exceptions.BotoCoreError:
        return None


def remember_sent_credentials(request: Any, **_: Any) -> None:
    """botocore's before-send: the credentials a signed request carries (the access key id
    in its Authorization header, a session token), remembered as secrets. AWS quotes them
    back (IncompleteSignature the header, SignatureDoesNotMatch the signed headers), and
    those from the chain (a profile's file, SSO, an instance role, each refresh of it) are
    known nowhere else: only keys in `env` were remembered."""
    said = {
        name: value.decode("latin-1") if isinstance(value, bytes) else str(value)
        for name in ("Authorization", "X-Amz-Security-Token")
        if (value := request.headers.get(name)) is not None
    }
    key_id = _SIGNED_KEY_ID.search(said.get("Authorization", ""))
    remember(key_id.group(1) if key_id else None, said.get("X-Amz-Security-Token"))
