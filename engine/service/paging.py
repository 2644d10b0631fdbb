"""A searchset read whole, or said to be read in part (issue 30: a record read in part must not
look complete).

An EHR may send a prefetched search as the first page of a searchset Bundle with a `next` link,
and a FHIR server answers the service's own searches the same way. The pages after the first
may hold the diagnosis or the risk factor that decides the advice: read only the first, and a
patient-view shows no card and an order loses its critical warning, with nothing to say why.

`read_pages` follows each Bundle's `next` links on the call's FHIR server, with its access token,
and adds their entries to the first page: bounded in pages (MAX_PAGES) and in time (the caller's
deadline). It never sends the token anywhere but the call's `fhirServer` (a `next` link to
another host, or outside the server's base path, is not followed), and follows nothing when the
call gives no token. What it cannot read stays as it came, its `next` link in place, and is
named in `partial` with the reason; cdshooks.py then says on a card that the record was read in
part, never answering as if it were whole."""

import time
from typing import Callable, Dict, Optional
from urllib.parse import urlsplit

MAX_PAGES = 50  # pages of one search after the first: a patient's Conditions fit in far fewer


def next_link(bundle) -> Optional[str]:
    """The `next` link of a Bundle page, or None (the last page, or not a Bundle)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return None
    for link in _links(bundle):
        if link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def on_server(url: str, server: str) -> bool:
    """Whether `url` is on the FHIR server `server`: the same scheme, host and port, and a path at
    or below the server's base path (the only place the access token may go)."""
    try:
        a, b = urlsplit(url), urlsplit(server.rstrip("/"))
        same_place = (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
    except ValueError:
        return False
    base = b.path.rstrip("/")
    return same_place and a.scheme in ("http", "https") and (a.path == base or a.path.startswith(base + "/"))


def _links(bundle: dict) -> list:
    links = bundle.get("link")
    return [link for link in links if isinstance(link, dict)] if isinstance(links, list) else []


def read_pages(
    prefetch: Dict[str, object], request: dict, get: Callable[[str, float], object], deadline: float
) -> Dict[str, str]:
    """Follow the `next` links of each searchset in `prefetch` (changed in place: a search read
    whole has every page's entries and no `next` link). `get(url, timeout)` reads one page with the
    call's token, None when it cannot. Returns the keys read in part, with why."""
    partial: Dict[str, str] = {}
    for key, bundle in prefetch.items():
        if next_link(bundle) is None:
            continue
        why = _read_whole(bundle, request, get, deadline)
        if why:
            partial[key] = why
    return partial


def _read_whole(bundle: dict, request: dict, get, deadline: float) -> Optional[str]:
    """Add the entries of the pages after `bundle` to it; None when every page was read, else why not
    (the `next` link of the first page not read is left on `bundle`)."""
    server, auth = request.get("fhirServer"), request.get("fhirAuthorization")
    token = auth.get("access_token") if isinstance(auth, dict) else None
    if not isinstance(server, str) or not isinstance(token, str) or not token:
        return "the EHR sent one page of it, and no FHIR server with an access token to read the rest from"
    for _ in range(MAX_PAGES):
        url = next_link(bundle)
        if url is None:
            return None
        if not on_server(url, server):
            return "its next page is not on the call's FHIR server, so it was not read (the token goes nowhere else)"
        left = deadline - time.monotonic()
        if left <= 0:
            return "its next pages could not be read in the time a call has"
        page = get(url, left)
        if page is None:
            return "the FHIR server did not give its next page"
        if not isinstance(page, dict) or page.get("resourceType") != "Bundle":
            return "the FHIR server's next page of it is not a Bundle"
        entries = page.get("entry") or []
        if not isinstance(entries, list):
            return "the FHIR server's next page of it has no list of entries"
        bundle["entry"] = list(bundle.get("entry") or []) + entries
        rest = [link for link in _links(page) if link.get("relation") == "next"]
        bundle["link"] = [link for link in _links(bundle) if link.get("relation") != "next"] + rest
    return None if next_link(bundle) is None else f"it has more than {MAX_PAGES + 1} pages; those after were not read"
