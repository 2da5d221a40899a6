"""The 360° customer page, served by the profile API's app (`cdp serve api`): search by any
identifier or name, one page per customer with every field's source, identifiers, timeline,
traits, audiences, consents, predictions, next best action, what each destination holds,
merges and the review pairs to decide. Server-rendered Jinja templates; no JavaScript.

Sign-in takes an access token of CDP_API_TOKENS; a signed cookie keeps the session (signed with
CDP_PAGE_SECRET, else a key derived from all the tokens). Without
scope `profiles:pii` personal values are masked; deciding a review pair needs `identity:decide`,
accepting or rejecting a lead routed to a rep `leads:decide`.
The page reads the warehouse (read-only), so it shows what the last build holds; the live
section comes from the profile store, as in the API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cdp.core.config import PROJECT_ROOT
from cdp.core.warehouse import connect_warehouse

PII, DECIDE, DECIDE_LEADS = "profiles:pii", "identity:decide", "leads:decide"
SECRET_ENV = "CDP_PAGE_SECRET"
COOKIE = "cdp_session"
SESSION_SECONDS = 8 * 3600
MASK = "•••"
# customers' columns shown without personal data when the manifest cannot say which are
NOT_PERSONAL = {
    "profile_id", "is_identified", "country_code", "crm_lead_status", "crm_owner_name",
    "has_shop_account", "has_loyalty_card", "is_on_email_list", "is_in_crm", "sources",
    "record_count", "first_seen_at", "last_seen_at", "profile_updated_at",
}  # fmt: skip

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def _personal_customer_columns() -> set[str]:
    """Columns of marts.customers tagged personal data in the dbt project (the manifest)."""
    from cdp.privacy.access import pii_columns

    manifest = PROJECT_ROOT / "target" / "manifest.json"
    if not manifest.exists():
        return set()
    return {
        c["column"]
        for c in pii_columns(json.loads(manifest.read_text(encoding="utf-8")))
        if c["relation"].endswith(".customers")
    }


class Sessions:
    """Signed cookies: `base64(json).hmac`; the token itself is never stored in them."""

    def __init__(self, tokens: dict[str, frozenset[str]]):
        self.tokens = tokens
        # by default derived from every token: the same in every server process and after a
        # restart, and out of reach of anyone who holds only some of them
        derived = hashlib.sha256(("cdp-page:" + ";".join(sorted(tokens))).encode()).hexdigest()
        self.secret = (os.environ.get(SECRET_ENV) or derived).encode()

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()

    def issue(self, token: str) -> str | None:
        for known, scopes in self.tokens.items():
            if secrets.compare_digest(known.encode(), token.encode()):
                user = hashlib.sha256(known.encode()).hexdigest()[:8]
                until = time.time() + SESSION_SECONDS
                body = {"user": user, "scopes": sorted(scopes), "until": until}
                payload = base64.urlsafe_b64encode(json.dumps(body).encode())
                return f"{payload.decode()}.{self._sign(payload)}"
        return None

    def read(self, cookie: str | None) -> dict | None:
        if not cookie or "." not in cookie:
            return None
        payload, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(self._sign(payload.encode()), signature):
            return None
        session = json.loads(base64.urlsafe_b64decode(payload))
        return session if session["until"] > time.time() else None


def _masked_customer(row: dict, personal: set[str]) -> dict:
    """A row of marts.customers without its personal values (as tagged, else all but the
    known harmless ones)."""
    return {
        k: (v if k in NOT_PERSONAL or (personal and k not in personal) else MASK)
        for k, v in row.items()
    }


def _masked_profile(profile: dict, personal: set[str]) -> dict:
    return {
        **profile,
        "customer": _masked_customer(profile["customer"], personal),
        "attributes": [{**a, "value": MASK} for a in profile["attributes"]],
        "identifiers": [
            {**i, "identifier_value": MASK} if i["identifier_kind"] != "profile_id" else i
            for i in profile["identifiers"]
        ],
        "records": [{**r, "source_record_id": MASK} for r in profile["records"]],
        "recent_events": [
            {**e, "detail": MASK if e["kind"] == "ticket" else e["detail"]}
            for e in profile["recent_events"]
        ],
        "changes": [{**c, "old_value": MASK, "new_value": MASK} for c in profile["changes"]],
        "review_pairs": [
            {**p, "record_key_l": MASK, "record_key_r": MASK} for p in profile["review_pairs"]
        ],
        "live": {**profile["live"], "traits": dict.fromkeys(profile["live"]["traits"], MASK)},
    }


def create_router(tokens: dict[str, frozenset[str]]) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    sessions = Sessions(tokens)
    personal = _personal_customer_columns()

    def page(name: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**context), status)

    def session_of(request: Request) -> dict:
        session = sessions.read(request.cookies.get(COOKIE))
        if session is None:
            query = f"?{request.url.query}" if request.url.query else ""
            target = quote(f"{request.url.path}{query}")
            raise HTTPException(303, headers={"Location": f"/login?next={target}"})
        return session

    async def form(request: Request) -> dict[str, str]:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        return {k: v[0] for k, v in fields.items()}

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/customers", 303)

    @router.get("/login")
    async def login_page(next: str = "/customers") -> HTMLResponse:
        return page("login.html", next=next)

    @router.post("/login")
    async def login(request: Request):
        fields = await form(request)
        cookie = sessions.issue(fields.get("token", "").strip())
        target = fields.get("next", "/customers")
        if not target.startswith("/") or target.startswith("//"):
            target = "/customers"
        if cookie is None:
            return page("login.html", 401, next=target, error="That access token is not known.")
        answer = RedirectResponse(target, 303)
        answer.set_cookie(COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True, samesite="strict")
        return answer

    @router.post("/logout")
    async def logout() -> RedirectResponse:
        answer = RedirectResponse("/login", 303)
        answer.delete_cookie(COOKIE)
        return answer

    @router.get("/customers")
    async def search(request: Request, q: str = "") -> HTMLResponse:
        from cdp.identity.profile import search_profiles

        session = session_of(request)
        results, error = [], None
        by_name = q.strip() and ":" not in q and "@" not in q and not q.startswith("p_")
        if by_name and PII not in session["scopes"]:
            error = "Searching by name needs access to personal data; search by an identifier."
        elif q.strip():
            try:
                with connect_warehouse(read_only=True) as con:
                    results = search_profiles(con, q)
            except Exception as exc:  # the warehouse busy or not built: one line, no traceback
                error = f"The warehouse could not be read: {str(exc).splitlines()[0]}"
            if PII not in session["scopes"]:
                results = [_masked_customer(r, personal) for r in results]
        return page("search.html", q=q, results=results, error=error, session=session)

    @router.get("/customers/{profile_id}")
    async def customer(request: Request, profile_id: str, note: str = "") -> HTMLResponse:
        from cdp.identity.profile import ProfileNotFound, profile_360
        from cdp.realtime.live import overlay_for, view

        session = session_of(request)
        try:
            with connect_warehouse(read_only=True) as con:
                profile = profile_360(con, profile_id, events=40)
        except ProfileNotFound as exc:
            return page("search.html", 404, q=profile_id, results=[], error=str(exc),
                        session=session)  # fmt: skip
        except Exception as exc:  # the warehouse busy or not built
            return page("search.html", 503, q=profile_id, results=[],
                        error=f"The warehouse could not be read: {str(exc).splitlines()[0]}",
                        session=session)  # fmt: skip
        store = request.app.state.store
        document, overlay = overlay_for(store, f"profile_id:{profile_id}")
        profile["live"] = view(overlay, document)
        if PII not in session["scopes"]:
            profile = _masked_profile(profile, personal)
        return page(
            "customer.html",
            p=profile,
            session=session,
            may_decide=DECIDE in session["scopes"],
            may_decide_leads=DECIDE_LEADS in session["scopes"],
            masked=PII not in session["scopes"],
            note=note,
        )

    async def decided(request: Request, scope: str) -> tuple[dict, dict[str, str]]:
        """The session and the form of a decision, for a session with the scope to decide."""
        session = session_of(request)
        if scope not in session["scopes"]:
            raise HTTPException(403, f"deciding needs scope {scope}")
        return session, await form(request)

    def stored(profile_id: str, store, refused: type[Exception]) -> RedirectResponse:
        """Store a decision with `store(con)` (its id) and go back to the customer's page with a
        note saying what happened."""
        try:
            with connect_warehouse() as con:
                note = f"Decision {store(con)} stored: the next run applies it."
        except refused as exc:
            note = str(exc)
        except Exception as exc:  # a run holds the warehouse
            note = f"The warehouse could not be written: {str(exc).splitlines()[0]}"
        return RedirectResponse(f"/customers/{profile_id}?note={quote(note)}", 303)

    @router.post("/customers/{profile_id}/lead/{contact_id}")
    async def decide_lead(request: Request, profile_id: str, contact_id: str):
        from cdp.intelligence.lead_workflow import LeadDecisionError, decide

        session, fields = await decided(request, DECIDE_LEADS)

        def store(con) -> str:
            return decide(
                con, contact_id, fields.get("decision", ""), reason=fields.get("reason", ""),
                decided_by=f"page:{session['user']}",
            )[0]  # fmt: skip

        return stored(profile_id, store, LeadDecisionError)

    @router.post("/customers/{profile_id}/review/{pair_id}")
    async def decide_pair(request: Request, profile_id: str, pair_id: str):
        from cdp.identity.decisions import DecisionError, decide, review_pair

        session, fields = await decided(request, DECIDE)
        action = {"accept": "merge", "reject": "keep_apart"}.get(fields.get("decision", ""))
        if action is None:
            raise HTTPException(400, "decision must be accept or reject")

        def store(con) -> str:
            a, b = review_pair(con, pair_id)
            return decide(
                con, action, a, b, reason=fields.get("reason", ""),
                decided_by=f"page:{session['user']}",
            )  # fmt: skip

        return stored(profile_id, store, DecisionError)

    return router
