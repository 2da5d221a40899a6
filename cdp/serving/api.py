"""The profile API (`cdp serve api`): a profile by any identifier, from the profile store.
Handlers run on the event loop: a store read is a key lookup (Redis or SQLite), shorter than a
hand-off to a thread.

    GET /v1/profiles/{kind}:{value}                   the whole document
    GET /v1/profiles/{kind}:{value}/traits?include=a,b
    GET /v1/profiles/{kind}:{value}/audiences
    GET /v1/profiles/{kind}:{value}/events?limit=50&before=<timestamp>

Every answer carries what the collector saw since the batch build (`live`, cdp/realtime/live.py):
events, identify traits, consent changes (which override the batch's consents at once). Someone
the batch does not know yet is found by the ids their events carried (`known: false`).

`kind` is any identifier kind the identity graph knows (`email`, `user_id`, `anonymous_id`,
`shop_customer_id`, ...) or `profile_id`. Bearer tokens come from CDP_API_TOKENS as
`token=scope scope;token=scope`; scope `profiles:read` reads profiles, `profiles:pii` adds the
personal data (the document's `pii` section and identifier values), masked otherwise. OpenAPI at
/openapi.json, interactive docs at /docs.
"""

import os
import secrets
from contextlib import asynccontextmanager
from typing import Annotated

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cdp.realtime.live import (
    cursor_of,
    overlay_for,
    recent_events,
    view,
    with_live_consents,
)
from cdp.realtime.store import ProfileStore, open_store
from cdp.serving.pages import create_router

TOKENS_ENV = "CDP_API_TOKENS"
READ, PII = "profiles:read", "profiles:pii"
JSON = "application/json"
# identifier kinds whose values are not personal data on their own
OPAQUE_KINDS = ("profile_id",)
# Segment's names for the kinds the web events' ids become (sources/web.yml: the anonymousId is
# the browser's cookie, the userId the shop account's id)
KIND_ALIASES = {"anonymous_id": "cookie_id", "user_id": "shop_customer_id"}


def tokens_from_env() -> dict[str, frozenset[str]]:
    """`token=scope scope;token=scope` -> scopes per token."""
    tokens = {}
    for entry in os.environ.get(TOKENS_ENV, "").split(";"):
        token, _, scopes = entry.strip().partition("=")
        if token:
            tokens[token] = frozenset(scopes.split())
    return tokens


def _mask_identifier(identifier: str) -> str:
    kind = identifier.partition(":")[0]
    return identifier if kind in OPAQUE_KINDS else f"{kind}:***"


def shown(document: dict, scopes: frozenset[str]) -> dict:
    """The document as a token with these scopes may see it (identify traits are personal)."""
    if PII in scopes:
        return document
    masked = {k: v for k, v in document.items() if k != "pii"}
    masked["identifiers"] = [_mask_identifier(i) for i in document.get("identifiers", [])]
    masked["pii"] = {k: None for k in document.get("pii", {})}
    if "live" in document:
        masked["live"] = {**document["live"], "traits": dict.fromkeys(document["live"]["traits"])}
    return masked


def scopes_for(tokens: dict[str, frozenset[str]], token: str | None) -> frozenset[str]:
    """The scopes of a bearer token that may read profiles; 401 or 403 otherwise."""
    if token is None:
        raise HTTPException(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    for known, scopes in tokens.items():
        if secrets.compare_digest(known.encode(), token.encode()):
            if READ not in scopes:
                raise HTTPException(403, f"the token lacks scope {READ}")
            return scopes
    raise HTTPException(401, "unknown token", {"WWW-Authenticate": "Bearer"})


def found_in(store: ProfileStore, reference: str) -> tuple[dict, dict | None]:
    """(the batch's document, or a stub for someone only the collector saw; the overlay)."""
    kind, _, value = reference.partition(":")
    if not kind or not value:
        raise HTTPException(400, "refer to a profile as kind:value, e.g. email:a@example.com")
    kind = KIND_ALIASES.get(kind, kind)
    document, overlay = overlay_for(store, f"{kind}:{_normalized(kind, value)}")
    if document is None and overlay is None:
        raise HTTPException(404, f"no profile holds {reference}")
    return document or {"profile_id": None, "known": False}, overlay


def profile_in(store: ProfileStore, reference: str) -> dict:
    """The batch's document with what the collector saw since (`live`) and its consents."""
    document, overlay = found_in(store, reference)
    live = view(overlay, document)
    document = {**document, "live": live}
    if live["consents"]:
        batch = document.get("consents", [])
        document["consents"] = with_live_consents(batch, live["consents"])
    return document


def profile_body(store: ProfileStore, reference: str, scopes: frozenset[str]) -> bytes:
    """GET /v1/profiles/{reference} as orjson bytes. Returned as a dict, FastAPI would walk and
    re-encode every value first (jsonable_encoder), which took longer than the store's read."""
    return orjson.dumps(shown(profile_in(store, reference), scopes))


def _bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, as FastAPI's HTTPBearer reads it."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


class ProfileAPI(FastAPI):
    """FastAPI with GET /v1/profiles/{reference} answered before the framework's per-request
    machinery (middleware chain, request objects, dependency solving): at 2,000 requests a
    second that machinery cost more server CPU than the lookup, and on 2 cores the CPU the
    server leaves idle is what keeps the tail short. Everything else goes through FastAPI."""

    PREFIX = "/v1/profiles/"

    def __init__(self, tokens: dict[str, frozenset[str]], **kwargs):
        super().__init__(**kwargs)
        self.tokens = tokens

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not path.startswith(self.PREFIX)
            or "/" in path[len(self.PREFIX) :]
        ):
            return await super().__call__(scope, receive, send)
        headers = [(b"content-type", JSON.encode())]
        try:
            scopes = scopes_for(self.tokens, _bearer_token(scope["headers"]))
            status, body = 200, profile_body(self.state.store, path[len(self.PREFIX) :], scopes)
        except HTTPException as refused:  # the same answer FastAPI gives for it
            status, body = refused.status_code, orjson.dumps({"detail": refused.detail})
            extra = refused.headers or {}
            headers += [(name.lower().encode(), value.encode()) for name, value in extra.items()]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(store: ProfileStore | None = None, tokens: dict | None = None) -> FastAPI:
    """The API over `store` (default: the configured one) with `tokens` (default: from env)."""
    tokens = tokens_from_env() if tokens is None else tokens

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.store = store or open_store()
        try:
            yield
        finally:
            if store is None:
                app.state.store.close()

    app = ProfileAPI(
        tokens,
        title="CDP profile API",
        version="1",
        description="Golden records, traits, audiences, consents, predictions and next best "
        "action of a customer, by any identifier.",
        lifespan=lifespan,
    )
    bearer = HTTPBearer(auto_error=False)

    # async: FastAPI runs a plain def dependency in a worker thread, and that hand-off cost more
    # than everything else a request does
    async def scopes_of(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> frozenset[str]:
        return scopes_for(tokens, credentials.credentials if credentials else None)

    Scopes = Annotated[frozenset[str], Depends(scopes_of)]

    # The hottest path. Requests for it are answered by ProfileAPI.__call__ before they reach
    # this route, which documents it in the OpenAPI schema and serves the same bytes.
    @app.get(
        "/v1/profiles/{reference}",
        summary="A profile by kind:value",
        response_class=Response,
        responses={200: {"content": {"application/json": {}}, "description": "The profile"}},
    )
    async def get_profile(request: Request, reference: str, scopes: Scopes) -> Response:
        return Response(profile_body(request.app.state.store, reference, scopes), media_type=JSON)

    @app.get("/v1/profiles/{reference}/traits", summary="A profile's traits")
    async def get_traits(
        request: Request,
        reference: str,
        scopes: Scopes,
        include: Annotated[str | None, Query(description="Comma-separated trait names")] = None,
    ) -> dict:
        document = profile_in(request.app.state.store, reference)
        traits = document.get("traits", {})
        if include:
            wanted = [name.strip() for name in include.split(",") if name.strip()]
            unknown = [name for name in wanted if name not in traits]
            if unknown:
                raise HTTPException(400, f"unknown trait(s): {', '.join(unknown)}")
            traits = {name: traits[name] for name in wanted}
        return {"profile_id": document["profile_id"], "traits": traits}

    @app.get("/v1/profiles/{reference}/audiences", summary="A profile's audiences")
    async def get_audiences(request: Request, reference: str, scopes: Scopes) -> dict:
        document = profile_in(request.app.state.store, reference)
        return {"profile_id": document["profile_id"], "audiences": document.get("audiences", [])}

    @app.get("/v1/profiles/{reference}/events", summary="A profile's recent events, newest first")
    async def get_events(
        request: Request,
        reference: str,
        scopes: Scopes,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        before: Annotated[
            str | None, Query(description="The previous page's next_before: older events only")
        ] = None,
    ) -> dict:
        document, overlay = found_in(request.app.state.store, reference)
        events = recent_events(overlay, limit, before)
        if PII not in scopes:  # properties may carry personal data
            events = [{**e, "properties": dict.fromkeys(e["properties"])} for e in events]
        more = len(recent_events(overlay, limit + 1, before)) > limit
        return {
            "profile_id": document["profile_id"],
            "events": events,
            "next_before": cursor_of(events[-1]) if more and events else None,
        }

    app.include_router(create_router(tokens))

    @app.get("/health", include_in_schema=False)
    async def health() -> dict:
        return {"ok": True}

    return app


def _normalized(kind: str, value: str) -> str:
    """Identifiers are stored normalized; an email is looked up as the warehouse keeps it."""
    return value.strip().lower() if kind == "email" else value.strip()
