"""Provision an Amazon Cognito user pool in a running moto server and print the tokens it issues.

usage: $PYTHON tests/idp/cognito.py --endpoint http://127.0.0.1:PORT [--region us-east-1]
                                    [--wait SECONDS]

Meant to be called by a Rust integration test right after it spawned `$MOTO_SERVER -H 127.0.0.1 -p PORT`.
Uses only boto3 (dummy credentials), the standard library and joserfc (the JOSE library moto itself
uses for Cognito, so it is always in the venv next to moto).

What it does, against the moto server at --endpoint:
  1. creates a user pool, a resource server `dynatrace-mcp` with scopes read / davis / write, and two
     app clients:
       service  confidential (has a secret), AllowedOAuthFlows=client_credentials,
                AllowedOAuthScopes=dynatrace-mcp/{read,davis,write}
       public   no secret, ExplicitAuthFlows USER_PASSWORD_AUTH + REFRESH_TOKEN_AUTH
     and users alice, bob (confirmed, permanent password) and carol (temporary password); alice is in
     the groups `dynatrace-mcp/read` and `dynatrace-mcp/write` (her tokens carry `cognito:groups`).
  2. obtains tokens by every path moto 5.2.5 really implements over the wire:
       InitiateAuth USER_PASSWORD_AUTH          alice_*, bob_*      (public client)
       InitiateAuth REFRESH_TOKEN_AUTH          alice_refreshed_*   (public client)
       AdminInitiateAuth ADMIN_USER_PASSWORD_AUTH  alice_admin_*    (service client)
       InitiateAuth -> NEW_PASSWORD_REQUIRED -> RespondToAuthChallenge   carol_*
     moto puts the fixed scope "aws.cognito.signin.user.admin" in ALL of these access tokens, always
     with exp = iat + 3600 (the app client's AccessTokenValidity / TokenValidityUnits are stored but
     ignored), and moto has NO hosted-UI /oauth2/token endpoint (client_credentials is impossible:
     the POST falls through to moto's S3 handler and fails with HTTP 500).
  3. therefore also MINTS tokens moto cannot issue (custom scopes, expired, wrong issuer, bad
     signature). They are signed with moto's bundled private key (moto/cognitoidp/resources/
     jwks-private.json), i.e. exactly the key whose public half moto serves as the pool's JWKS, so a
     verifier cannot tell them from moto's own tokens. Their claims copy the shape of real Cognito
     tokens (client_credentials: sub == client_id, `version: 2`, no `aud`). Each token entry says
     "minted": true/false and where it came from.
  4. fetches the pool's JWKS and openid-configuration from moto, checks that every token's `iss`
     equals the discovery `issuer`, that the header `kid` is in the JWKS, and that every token except
     `bad_signature_access` verifies against the served JWKS (and that one does not).

Prints ONE JSON object on stdout (progress/errors go to stderr), exit status 0; on any failure prints
`cognito.py: ERROR: ...` to stderr and exits 1. Output shape:
  {
    "endpoint": "http://127.0.0.1:PORT", "region": "us-east-1",
    "pool_id": "us-east-1_<32 hex>",
    "issuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_<32 hex>",   # as in the tokens
    "jwks_url": "http://127.0.0.1:PORT/<pool_id>/.well-known/jwks.json",           # fetch keys here
    "openid_configuration_url": "http://127.0.0.1:PORT/<pool_id>/.well-known/openid-configuration",
    "openid_configuration": {...}, "jwks": {...},                                    # as served
    "resource_server": {"identifier": "dynatrace-mcp", "scopes": ["dynatrace-mcp/read", ...]},
    "clients": {"service": {"client_id", "client_secret"}, "public": {"client_id", "client_secret": null}},
    "users": {"alice": {"username", "password", "sub"}, ...},
    "tokens": {"alice_access": {"token", "kind": "access"|"id"|"refresh", "minted", "source",
                                "expires_in", "header", "claims"}, ...},
    "unsupported": {"client_credentials": "...", ...}
  }
Note: moto signs every pool's tokens with the same fixed key (kid "dummy"), so only `iss` tells pools
apart; a resource server must check `iss`, `token_use` == "access" and `client_id` (Cognito access
tokens have no `aud`).
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import boto3
from botocore.config import Config
from joserfc import jwk, jwt
from moto.utilities.utils import load_resource

RESOURCE_SERVER = "dynatrace-mcp"
SCOPE_NAMES = ["read", "davis", "write"]
SCOPES = [f"{RESOURCE_SERVER}/{s}" for s in SCOPE_NAMES]
# Passwords satisfy Cognito's default policy (length >= 8, upper, lower, digit, symbol).
USERS = {
    "alice": "Alice-Passw0rd!",
    "bob": "Bob-Passw0rd!",
    "carol": "Carol-Passw0rd!",  # final password, set via the NEW_PASSWORD_REQUIRED challenge
}
CAROL_TEMP_PASSWORD = "Carol-Temp0rary!"


class Failure(Exception):
    """A setup step failed; main() prints the message and exits 1."""


def log(msg: str) -> None:
    print(f"cognito.py: {msg}", file=sys.stderr)


# ------------------------------------------------------------------------------------------ helpers


def b64url_json(part: str) -> dict[str, Any]:
    """Decode one base64url segment of a JWT (no padding in JWTs) into a dict. No verification."""
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS, decoded by hand: decoding only, no signature check."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Failure(f"not a compact JWT (expected 3 dot-separated parts): {token[:40]}...")
    return b64url_json(parts[0]), b64url_json(parts[1])


def http_get_json(url: str) -> dict[str, Any]:
    """GET a JSON document from moto; fail on non-200 or non-JSON."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read()
            if resp.status != 200:
                raise Failure(f"GET {url}: HTTP {resp.status}")
    except urllib.error.URLError as e:
        raise Failure(f"GET {url}: {e}") from e
    try:
        return json.loads(body)
    except ValueError as e:
        raise Failure(f"GET {url}: not JSON: {body[:200]!r}") from e


def wait_for_port(endpoint: str, seconds: float) -> None:
    """Poll until moto's port accepts TCP connections (the test may call us right after spawning it)."""
    u = urllib.parse.urlsplit(endpoint)
    host, port = u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 80)
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise Failure(f"moto server not reachable at {host}:{port} after {seconds}s: {e}") from e
            time.sleep(0.1)


def call(what: str, fn: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one boto3 call, turning any exception into a Failure that names the step."""
    try:
        return fn(**kwargs)
    except Exception as e:  # botocore ClientError, EndpointConnectionError, ...
        raise Failure(f"{what}: {type(e).__name__}: {e}") from e


# ------------------------------------------------------------------------------------------ main work


def provision(endpoint: str, region: str) -> dict[str, Any]:
    idp = boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name=region,
        # moto accepts any credentials; explicit dummies keep the caller's AWS env/profile out of it.
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )

    # --- user pool + resource server ------------------------------------------------------------
    pool_id = call("CreateUserPool", idp.create_user_pool, PoolName=f"dynatrace-mcp-it-{uuid.uuid4().hex[:8]}")[
        "UserPool"
    ]["Id"]
    log(f"user pool {pool_id}")
    call(
        "CreateResourceServer",
        idp.create_resource_server,
        UserPoolId=pool_id,
        Identifier=RESOURCE_SERVER,
        Name="Dynatrace MCP server",
        Scopes=[{"ScopeName": s, "ScopeDescription": f"{s} access"} for s in SCOPE_NAMES],
    )

    # --- app clients ----------------------------------------------------------------------------
    # Confidential client configured like a real machine-to-machine client. moto stores (and returns
    # from DescribeUserPoolClient) AllowedOAuthFlows/Scopes and the token validity settings, but
    # issues no client_credentials tokens and ignores the validity for every token it issues.
    service = call(
        "CreateUserPoolClient(service)",
        idp.create_user_pool_client,
        UserPoolId=pool_id,
        ClientName="service",
        GenerateSecret=True,
        AllowedOAuthFlowsUserPoolClient=True,
        AllowedOAuthFlows=["client_credentials"],
        AllowedOAuthScopes=SCOPES,
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        TokenValidityUnits={"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "days"},
        AccessTokenValidity=5,
        IdTokenValidity=5,
        RefreshTokenValidity=1,
    )["UserPoolClient"]
    # Public client for the user flows. ReadAttributes puts `email` into its id tokens.
    public = call(
        "CreateUserPoolClient(public)",
        idp.create_user_pool_client,
        UserPoolId=pool_id,
        ClientName="public",
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        ReadAttributes=["email", "email_verified"],
    )["UserPoolClient"]
    service_id, service_secret, public_id = service["ClientId"], service["ClientSecret"], public["ClientId"]

    # --- users ----------------------------------------------------------------------------------
    users: dict[str, dict[str, Any]] = {}
    for name, password in USERS.items():
        created = call(
            f"AdminCreateUser({name})",
            idp.admin_create_user,
            UserPoolId=pool_id,
            Username=name,
            TemporaryPassword=CAROL_TEMP_PASSWORD if name == "carol" else password,
            MessageAction="SUPPRESS",
            UserAttributes=[
                {"Name": "email", "Value": f"{name}@example.com"},
                {"Name": "email_verified", "Value": "true"},
            ],
        )["User"]
        sub = next((a["Value"] for a in created.get("Attributes", []) if a["Name"] == "sub"), None)
        if name != "carol":
            # Make the password permanent: status CONFIRMED, so password auth yields tokens directly.
            call(
                f"AdminSetUserPassword({name})",
                idp.admin_set_user_password,
                UserPoolId=pool_id,
                Username=name,
                Password=password,
                Permanent=True,
            )
        users[name] = {"username": name, "password": password, "sub": sub}

    # --- groups -----------------------------------------------------------------------------------
    # Tokens from InitiateAuth never carry custom scopes (in real Cognito either: those come only from
    # the hosted UI's OAuth flows), but they do carry `cognito:groups`. alice is put in groups named
    # like the resource server's read and write scopes, so moto's own tokens for her grant them.
    for group in (f"{RESOURCE_SERVER}/read", f"{RESOURCE_SERVER}/write"):
        call(f"CreateGroup({group})", idp.create_group, UserPoolId=pool_id, GroupName=group)
        call(
            f"AdminAddUserToGroup(alice, {group})",
            idp.admin_add_user_to_group,
            UserPoolId=pool_id,
            Username="alice",
            GroupName=group,
        )

    tokens: dict[str, dict[str, Any]] = {}

    def add(prefix: str, result: dict[str, Any], source: str) -> None:
        """Record the tokens of one AuthenticationResult under <prefix>_access/_id/_refresh."""
        auth = result.get("AuthenticationResult")
        if not auth:
            raise Failure(f"{source}: no AuthenticationResult (challenge {result.get('ChallengeName')!r})")
        for key, kind in (("AccessToken", "access"), ("IdToken", "id"), ("RefreshToken", "refresh")):
            if key not in auth:
                continue
            entry: dict[str, Any] = {
                "token": auth[key],
                "kind": kind,
                "minted": False,
                "source": source,
                # ExpiresIn is the access/id token lifetime; moto's refresh tokens never expire.
                "expires_in": auth.get("ExpiresIn") if kind != "refresh" else None,
                "header": None,
                "claims": None,
            }
            if kind != "refresh":  # moto's refresh tokens are opaque UUIDs
                entry["header"], entry["claims"] = decode_jwt(auth[key])
            tokens[f"{prefix}_{kind}"] = entry

    # --- tokens moto really issues ----------------------------------------------------------------
    for name in ("alice", "bob"):
        add(
            name,
            call(
                f"InitiateAuth USER_PASSWORD_AUTH({name})",
                idp.initiate_auth,
                ClientId=public_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": name, "PASSWORD": USERS[name]},
            ),
            "moto: InitiateAuth USER_PASSWORD_AUTH (public client)",
        )
    # Refresh returns new access + id tokens (no new refresh token).
    add(
        "alice_refreshed",
        call(
            "InitiateAuth REFRESH_TOKEN_AUTH(alice)",
            idp.initiate_auth,
            ClientId=public_id,
            AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": tokens["alice_refresh"]["token"]},
        ),
        "moto: InitiateAuth REFRESH_TOKEN_AUTH (public client)",
    )
    # Admin flow through the confidential client: same token shape, client_id = service client.
    # (moto does not require SECRET_HASH here; real Cognito does for a client with a secret.)
    add(
        "alice_admin",
        call(
            "AdminInitiateAuth ADMIN_USER_PASSWORD_AUTH(alice)",
            idp.admin_initiate_auth,
            UserPoolId=pool_id,
            ClientId=service_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": "alice", "PASSWORD": USERS["alice"]},
        ),
        "moto: AdminInitiateAuth ADMIN_USER_PASSWORD_AUTH (service client)",
    )
    # carol: temporary password -> NEW_PASSWORD_REQUIRED challenge -> RespondToAuthChallenge.
    challenge = call(
        "InitiateAuth USER_PASSWORD_AUTH(carol)",
        idp.initiate_auth,
        ClientId=public_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "carol", "PASSWORD": CAROL_TEMP_PASSWORD},
    )
    if challenge.get("ChallengeName") != "NEW_PASSWORD_REQUIRED":
        raise Failure(f"carol: expected NEW_PASSWORD_REQUIRED, got {challenge.get('ChallengeName')!r}")
    add(
        "carol",
        call(
            "RespondToAuthChallenge NEW_PASSWORD_REQUIRED(carol)",
            idp.respond_to_auth_challenge,
            ClientId=public_id,
            ChallengeName="NEW_PASSWORD_REQUIRED",
            Session=challenge["Session"],
            ChallengeResponses={"USERNAME": "carol", "NEW_PASSWORD": USERS["carol"]},
        ),
        "moto: InitiateAuth -> NEW_PASSWORD_REQUIRED -> RespondToAuthChallenge (public client)",
    )

    # --- discovery documents served by moto -------------------------------------------------------
    # moto routes these unsigned GETs by path alone (any Host header); the issuer in the document is
    # the real AWS URL, the jwks_uri points back at moto.
    issuer = tokens["alice_access"]["claims"]["iss"]
    base = endpoint.rstrip("/")
    jwks_url = f"{base}/{pool_id}/.well-known/jwks.json"
    oidc_url = f"{base}/{pool_id}/.well-known/openid-configuration"
    jwks_doc = http_get_json(jwks_url)
    oidc_doc = http_get_json(oidc_url)
    if oidc_doc.get("issuer") != issuer:
        raise Failure(f"openid-configuration issuer {oidc_doc.get('issuer')!r} != token iss {issuer!r}")
    if oidc_doc.get("jwks_uri") != jwks_url:
        log(f"note: openid-configuration jwks_uri is {oidc_doc.get('jwks_uri')!r} (expected {jwks_url!r})")

    # --- minted tokens (what moto cannot issue) ---------------------------------------------------
    # moto signs with this private key for every pool (kid "dummy"); its public half is the JWKS above.
    moto_key = jwk.RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json"))
    kid = moto_key.kid or "dummy"
    # A different RSA key under the SAME kid, to produce a token whose signature must not verify.
    rogue_key = jwk.RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256"}, private=True)
    now = int(time.time())

    def mint(name: str, claims: dict[str, Any], source: str, key: Any = moto_key) -> None:
        # Real Cognito headers carry kid + alg; joserfc adds "typ": "JWT", exactly as in moto's tokens.
        header = {"kid": kid, "alg": "RS256"}
        token = jwt.encode(header, claims, key)
        h, c = decode_jwt(token)
        exp_in = claims["exp"] - now
        tokens[name] = {
            "token": token,
            "kind": "access",
            "minted": True,
            "source": source,
            "expires_in": exp_in,
            "header": h,
            "claims": c,
        }

    def client_credentials_claims(scope: str, iat: int, lifetime: int = 3600, iss: str = issuer) -> dict[str, Any]:
        # Shape of a real Cognito client_credentials access token: sub == client_id, no username, no aud.
        return {
            "sub": service_id,
            "token_use": "access",
            "scope": scope,
            "auth_time": iat,
            "iss": iss,
            "exp": iat + lifetime,
            "iat": iat,
            "version": 2,
            "jti": str(uuid.uuid4()),
            "client_id": service_id,
        }

    cc = "minted (moto key): client_credentials-shaped access token for the service client"
    mint("service_access", client_credentials_claims(f"{SCOPES[0]} {SCOPES[2]}", now), cc)  # read write
    mint("service_read_access", client_credentials_claims(SCOPES[0], now), cc)
    mint("service_all_access", client_credentials_claims(" ".join(SCOPES), now), cc)
    # Expired an hour ago (well beyond any clock-skew leeway).
    mint(
        "expired_access",
        client_credentials_claims(f"{SCOPES[0]} {SCOPES[2]}", now - 7200),
        cc + ", expired (exp = now - 3600)",
    )
    # Same key, another pool's issuer: since moto's key is shared by all pools, only iss catches this.
    other_pool = f"{region}_{'0' * 32}"
    mint(
        "wrong_issuer_access",
        client_credentials_claims(
            f"{SCOPES[0]} {SCOPES[2]}", now, iss=f"https://cognito-idp.{region}.amazonaws.com/{other_pool}"
        ),
        cc + f", iss of another pool ({other_pool})",
    )
    mint(
        "bad_signature_access",
        client_credentials_claims(f"{SCOPES[0]} {SCOPES[2]}", now),
        cc + ", signed by a different RSA key with the same kid (signature must NOT verify)",
        key=rogue_key,
    )
    # A user access token with custom scopes, as the hosted UI's authorization-code flow would issue
    # it (moto has no hosted UI). Based on alice's real moto token, scope replaced.
    alice_claims = dict(tokens["alice_access"]["claims"])
    alice_claims.update(
        {
            "scope": f"openid {SCOPES[0]} {SCOPES[2]}",
            "iat": now,
            "auth_time": now,
            "exp": now + 3600,
            "jti": str(uuid.uuid4()),
            "version": 2,
        }
    )
    mint(
        "alice_scoped_access",
        alice_claims,
        "minted (moto key): alice's access token as from an authorization-code flow with custom scopes",
    )

    # --- self-checks ------------------------------------------------------------------------------
    keyset = jwk.KeySet.import_key_set(jwks_doc)
    jwks_kids = {k.get("kid") for k in jwks_doc.get("keys", [])}
    for name, t in tokens.items():
        if t["kind"] == "refresh":
            continue
        if t["header"].get("kid") not in jwks_kids:
            raise Failure(f"{name}: header kid {t['header'].get('kid')!r} not in JWKS kids {sorted(jwks_kids)}")
        if name != "wrong_issuer_access" and t["claims"].get("iss") != issuer:
            raise Failure(f"{name}: iss {t['claims'].get('iss')!r} != {issuer!r}")
        try:
            jwt.decode(t["token"], keyset, algorithms=["RS256"])  # signature only, claims not validated
            verified = True
        except Exception:
            verified = False
        if verified != (name != "bad_signature_access"):
            raise Failure(f"{name}: signature {'verified' if verified else 'did not verify'} against {jwks_url}")

    return {
        "endpoint": base,
        "region": region,
        "pool_id": pool_id,
        "issuer": issuer,
        "jwks_url": jwks_url,
        "openid_configuration_url": oidc_url,
        "openid_configuration": oidc_doc,
        "jwks": jwks_doc,
        "resource_server": {"identifier": RESOURCE_SERVER, "scopes": SCOPES},
        "clients": {
            "service": {"client_id": service_id, "client_secret": service_secret},
            "public": {"client_id": public_id, "client_secret": None},
        },
        "users": users,
        "tokens": tokens,
        "unsupported": {
            "client_credentials": "moto has no hosted-UI /oauth2/token endpoint (POST /oauth2/token -> HTTP 500"
            " from moto's S3 fallback); service_* tokens are minted with moto's key instead",
            "custom_scopes": "moto's InitiateAuth/AdminInitiateAuth access tokens always carry scope"
            " 'aws.cognito.signin.user.admin'; AllowedOAuthScopes is stored but ignored",
            "token_validity": "moto ignores AccessTokenValidity/IdTokenValidity/TokenValidityUnits: exp is"
            " always iat + 3600; expired_access is minted instead",
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", required=True, help="moto server URL, e.g. http://127.0.0.1:5000")
    ap.add_argument("--region", default="us-east-1", help="AWS region of the user pool (default us-east-1)")
    ap.add_argument("--wait", type=float, default=15.0, help="seconds to wait for moto's port (default 15)")
    args = ap.parse_args()
    try:
        wait_for_port(args.endpoint, args.wait)
        out = provision(args.endpoint, args.region)
    except Failure as e:
        print(f"cognito.py: ERROR: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug or an unexpected moto answer: still one clear line, exit 1
        print(f"cognito.py: ERROR: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
