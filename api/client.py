"""A small synchronous client of the auxtune REST API, on httpx: what ``auxtune submit/status/best --url`` use.

    from api.client import AuxtuneClient, ApiError

    with AuxtuneClient("http://127.0.0.1:8000", token="axt_…") as client:   # token default: $AUXTUNE_TOKEN
        study = client.submit(spec_dict)                                     # {"id": 1, "status": "queued", …}
        client.best(study["id"])                                             # {"lambdas": {…}, "value": …}

Every method returns the API's JSON (a dict) and raises ``ApiError`` for any refusal or failure: its ``str``
is one line per problem, ``"field: message"`` (from the API's ``{"detail": [{"loc", "msg"}]}`` shape), and
``status`` is the HTTP status, or ``None`` when no answer came (server down, wrong URL, timeout). The client
never imports torch or the server's code, so it is cheap to import on any machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["API_PREFIX", "TOKEN_ENV", "ApiError", "AuxtuneClient", "error_line"]

API_PREFIX = "/api/v1"  # the same as api.config.API_PREFIX (a test checks), without importing the server
TOKEN_ENV = "AUXTUNE_TOKEN"
#: ``loc`` roots that say where in the request a problem is; the field path after them is what a user wrote.
_LOC_ROOTS = frozenset({"body", "query", "path", "header", "cookie"})


class ApiError(Exception):
    """A request the API refused (``status`` 4xx), failed (5xx), or that got no answer (``status`` None).

    ``messages`` holds one readable line per problem (``"search.n_trials: Input should be greater than 0"``);
    ``items`` the API's raw ``detail`` entries (``loc``, ``msg``, ``type``) when it sent them.
    """

    def __init__(self, status: int | None, messages: Sequence[str], items: Sequence[dict[str, Any]] = ()) -> None:
        self.status = status
        self.messages = [m for m in messages if m] or [f"HTTP {status}" if status else "request failed"]
        self.items = [dict(i) for i in items]
        super().__init__("\n".join(self.messages))

    @property
    def types(self) -> list[str]:
        """The ``type`` of each problem the API named (``"not_found"``, ``"no_result_yet"``, …)."""
        return [str(i.get("type", "")) for i in self.items]

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """The error a non-2xx response carries, in readable lines whatever its body is."""
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list) and detail:
            items = [d for d in detail if isinstance(d, dict)]
            return cls(response.status_code, [error_line(d) for d in items], items)
        if isinstance(detail, str) and detail:
            return cls(response.status_code, [detail])
        first = next((line.strip() for line in response.text.splitlines() if line.strip()), "")
        head = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
        where = f"{head} from {response.request.url}"
        return cls(response.status_code, [f"{where}: {first[:200]}" if first else where])


def error_line(item: dict[str, Any]) -> str:
    """``{"loc": ["body", "aux_tasks", 0, "loss"], "msg": "…"}`` → ``"aux_tasks.0.loss: …"``."""
    loc = [str(p) for p in item.get("loc") or []]
    if loc and loc[0] in _LOC_ROOTS:
        loc = loc[1:]
    msg = str(item.get("msg") or item.get("type") or "error")
    return f"{'.'.join(loc)}: {msg}" if loc else msg


def _base_url(url: str) -> str:
    """The server's root URL: trailing ``/`` and ``/api/v1`` are dropped, so both forms can be given."""
    base = url.strip().rstrip("/")
    if base.endswith(API_PREFIX):
        base = base[: -len(API_PREFIX)]
    if not base.startswith(("http://", "https://")) or len(base.split("://", 1)[1]) == 0:
        raise ApiError(None, [f"url: {url!r} is not an http(s) URL; give the server's address, e.g. "
                              "http://127.0.0.1:8000"])
    return base


class AuxtuneClient:
    """The REST API of one auxtune server (``auxtune serve`` / ``python -m api``)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30) -> None:
        self.url = _base_url(url)
        self.token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
        headers = {"User-Agent": "auxtune-client/0.1", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    # -- plumbing ------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AuxtuneClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuxtuneClient({self.url!r}, token={'set' if self.token else 'none'})"

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(None, [f"cannot reach {self.url}: no answer within {self.timeout:g} s; is the server "
                                  "up and the address right?"]) from None
        except httpx.TransportError as exc:
            reason = str(exc).strip() or type(exc).__name__
            raise ApiError(None, [f"cannot reach {self.url}: {reason}; is the server up (auxtune serve) and the "
                                  "address right?"]) from None
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, [f"{self.url}{path} did not answer with JSON; is this an auxtune "
                                                  "server?"]) from None

    @staticmethod
    def _id(study_id: int) -> int:
        if isinstance(study_id, bool) or not isinstance(study_id, int):
            raise TypeError(f"study_id must be an int, got {study_id!r}")
        return study_id

    # -- studies -------------------------------------------------------------------------------------------
    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Create a study from a spec (as JSON); returns the study (``id``, ``status`` ``queued``, …)."""
        return self._json("POST", f"{API_PREFIX}/studies", json=spec)  # type: ignore[no-any-return]

    def studies(self, status: str | None = None, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of your studies, newest first: ``{"data": [...], "count": N}``."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if status is not None:
            params["status"] = status
        return self._json("GET", f"{API_PREFIX}/studies", params=params)  # type: ignore[no-any-return]

    def study(self, study_id: int) -> dict[str, Any]:
        """One study: spec, status, trials per state (``counts``), best so far (``best``)."""
        return self._json("GET", f"{API_PREFIX}/studies/{self._id(study_id)}")  # type: ignore[no-any-return]

    def find_study(self, name_or_id: int | str) -> dict[str, Any]:
        """The study with that id (an int, or a string of digits) or name; ``ApiError`` 404 if there is none."""
        if isinstance(name_or_id, int) or name_or_id.strip().isdigit():
            return self.study(int(name_or_id))
        name, offset, page = name_or_id.strip(), 0, 1000
        while True:
            found = self.studies(offset=offset, limit=page)
            for study in found["data"]:
                if study["name"] == name:
                    return study  # type: ignore[no-any-return]
            offset += page
            if offset >= int(found["count"]) or not found["data"]:
                raise ApiError(404, [f"study: no study named {name!r} at {self.url} (among the "
                                     f"{found['count']} you may see); list them with GET {API_PREFIX}/studies"],
                               [{"loc": ["path", "study"], "msg": "not found", "type": "not_found"}])

    def best(self, study_id: int) -> dict[str, Any]:
        """``{"lambdas", "value", "trial", "metric", "direction"}`` (of a multi-objective study: its Pareto front,
        ``{"metrics", "directions", "front", …, "how_to_pick"}``); ``ApiError`` 409 while no trial completed."""
        return self._json("GET", f"{API_PREFIX}/studies/{self._id(study_id)}/best")  # type: ignore[no-any-return]

    # -- trust: confirmation and affinity -----------------------------------------------------------------
    def confirm(self, study_id: int, seeds: int | str | None = None, top_k: int | None = None,
                **options: Any) -> dict[str, Any]:
        """Queue the confirmation of a done study (``seeds`` (or ``"auto"``), ``top_k`` and ``options``: ``ablate``,
        ``max_seeds``, ``resample_splits``; each defaults to its spec's); its report so far."""
        body = {k: v for k, v in {"seeds": seeds, "top_k": top_k, **options}.items() if v is not None}
        return self._json(  # type: ignore[no-any-return]
            "POST", f"{API_PREFIX}/studies/{self._id(study_id)}/confirm", json=body)

    def confirmation(self, study_id: int) -> dict[str, Any]:
        """The confirmation report (arms, comparisons, ``verdict``); ``ApiError`` 409 when none was queued."""
        return self._json("GET", f"{API_PREFIX}/studies/{self._id(study_id)}/confirmation")  # type: ignore[no-any-return]

    def affinity(self, study_id: int) -> dict[str, Any]:
        """Task affinity per aux task, the matrix and advice; ``ApiError`` 409 while no trial measured it."""
        return self._json("GET", f"{API_PREFIX}/studies/{self._id(study_id)}/affinity")  # type: ignore[no-any-return]

    def pause(self, study_id: int) -> dict[str, Any]:
        return self._json("POST", f"{API_PREFIX}/studies/{self._id(study_id)}/pause")  # type: ignore[no-any-return]

    def resume(self, study_id: int) -> dict[str, Any]:
        return self._json("POST", f"{API_PREFIX}/studies/{self._id(study_id)}/resume")  # type: ignore[no-any-return]

    def cancel(self, study_id: int) -> dict[str, Any]:
        return self._json("POST", f"{API_PREFIX}/studies/{self._id(study_id)}/cancel")  # type: ignore[no-any-return]

    def delete(self, study_id: int) -> None:
        """Delete a paused, cancelled, done or failed study with its trials (409 for an active one)."""
        self._request("DELETE", f"{API_PREFIX}/studies/{self._id(study_id)}")

    # -- trials --------------------------------------------------------------------------------------------
    def trials(self, study_id: int, state: str | Iterable[str] | None = None, offset: int = 0,
               limit: int = 100) -> dict[str, Any]:
        """A page of a study's trials by number: ``{"data": [...], "count": N}``; ``state`` filters."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if state is not None:
            params["state"] = [state] if isinstance(state, str) else list(state)
        return self._json(  # type: ignore[no-any-return]
            "GET", f"{API_PREFIX}/studies/{self._id(study_id)}/trials", params=params)

    def trial(self, study_id: int, number: int) -> dict[str, Any]:
        """One trial with its result and per-epoch, per-task curves."""
        return self._json(  # type: ignore[no-any-return]
            "GET", f"{API_PREFIX}/studies/{self._id(study_id)}/trials/{int(number)}")

    def report(self, study_id: int) -> str:
        """The study's self-contained HTML report (plotly.js inlined; ~5 MB)."""
        return self._request("GET", f"{API_PREFIX}/studies/{self._id(study_id)}/report.html",
                             headers={"Accept": "text/html"}).text

    # -- datasets, catalog, workers, health ----------------------------------------------------------------
    def upload_dataset(self, path: str | Path, label: str = "label", unlabelled: bool = False) -> dict[str, Any]:
        """Upload a CSV/Parquet table for the ``table`` workload (``label`` names its class column; ``unlabelled``:
        it may lack it, as a target domain may), or a .zip of a data folder. Returns the dataset; a spec refers to
        it by its ``reference`` (``"dataset:<id>"``; a file inside a folder: ``"dataset:<id>/<path>"``)."""
        p = Path(path)
        try:
            handle = p.open("rb")
        except OSError as exc:
            raise ApiError(None, [f"{p}: cannot read the file to upload: {exc.strerror or exc}"]) from None
        with handle:
            return self._json(  # type: ignore[no-any-return]
                "POST", f"{API_PREFIX}/datasets", files={"file": (p.name, handle)},
                data={"label": label, **({"unlabelled": "true"} if unlabelled else {})})

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        """An uploaded data set's record (owner, format, what its check found)."""
        return self._json("GET", f"{API_PREFIX}/datasets/{quote(str(dataset_id), safe='')}")  # type: ignore[no-any-return]

    def delete_dataset(self, dataset_id: str) -> None:
        """Delete an uploaded data set, and its bytes unless another upload has the same; 409 while a stored study
        refers to it (delete those studies first)."""
        self._request("DELETE", f"{API_PREFIX}/datasets/{quote(str(dataset_id), safe='')}")

    def workloads(self) -> dict[str, Any]:
        return self._json("GET", f"{API_PREFIX}/workloads")  # type: ignore[no-any-return]

    def workers(self) -> dict[str, Any]:
        return self._json("GET", f"{API_PREFIX}/workers")  # type: ignore[no-any-return]

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "database": "ok"}``; ``ApiError`` 503 when the server cannot reach its store."""
        try:
            return self._json("GET", "/healthz")  # type: ignore[no-any-return]
        except ApiError as exc:
            if exc.status == 503:
                raise ApiError(503, [f"{self.url} is up but unhealthy: its database is not answering (see the "
                                     "server's log)"]) from None
            raise
