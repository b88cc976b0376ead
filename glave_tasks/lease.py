"""Writer leases: one writer at a time per run x stage x shard, on local disk and on S3.

A lease is a small JSON object in the store (``runs/<run>/_leases/<stage>/shard-<k>.json``). It
is taken with a conditional create (S3 ``If-None-Match: *``, a hard link locally) or, when the
previous holder let go or stopped renewing, with a conditional replace of exactly the version
that was read (S3 ``If-Match``, a compare-and-swap under a lock file locally). Two writers can
therefore never both believe they hold it. The holder renews it every ``ttl/3`` from a background
thread; a holder that was killed stops renewing and its lease is free once ``ttl`` has passed,
or at once when it ran on this host and its process is gone.

A writer that finds the lease held waits (polling) up to ``wait_s`` and then fails with
``LeaseHeld``, naming the holder. A holder whose renewal found the lease taken over marks itself
lost; the stage runner checks that before it commits, so a writer that overran its lease never
commits over the one that took over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

from .errors import GlaveError, LeaseHeld, LeaseLost, StoreError
from .host import pid_alive
from .keys import join_key, safe_segment
from .layout import RunLayout, shard_name
from .store import ArtifactStore

log = logging.getLogger(__name__)

POLL_S = 0.5


def lease_key(run_id: str, stage: str, shard: int | None) -> str:
    """Where the lease of a run's stage (and shard, when the stage works per shard) lives."""
    name = f"{shard_name(shard)}.json" if shard is not None else "run.json"
    return join_key(RunLayout(run_id).prefix, "_leases", safe_segment(stage), name)


def _now() -> float:
    return time.time()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class Lease:
    """One lease; use as a context manager or with :meth:`acquire` / :meth:`release`."""

    def __init__(self, store: ArtifactStore, key: str, *, what: str, ttl_s: float = 60.0, wait_s: float = 900.0) -> None:
        self.store, self.key, self.what = store, key, what
        self.ttl_s, self.wait_s = float(ttl_s), float(wait_s)
        self.token = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._version: str | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.waited_s = 0.0

    # -- state --------------------------------------------------------------------------------
    def _body(self, released: bool = False) -> bytes:
        now = _now()
        return json.dumps({
            "what": self.what, "token": self.token, "host": self.host, "pid": self.pid,
            "renewed_at": _iso(now), "expires_at": now + self.ttl_s, "expires": _iso(now + self.ttl_s),
            "released": released,
        }, sort_keys=True).encode()

    def _free(self, current: dict[str, Any]) -> str | None:
        """Why a lease someone else wrote may be taken now, or None while it is held."""
        if current.get("released"):
            return "released"
        if float(current.get("expires_at") or 0) < _now():
            return "expired"
        if current.get("host") == self.host and isinstance(current.get("pid"), int) and \
                current["pid"] != self.pid and not pid_alive(current["pid"]):
            return "holder process gone"
        return None

    @property
    def lost(self) -> str | None:
        return self._lost

    def ensure_held(self) -> None:
        """Raise ``LeaseLost`` when the lease expired or was taken over while this writer worked."""
        if self._lost:
            raise LeaseLost(f"{self.what}: lease lost ({self._lost}); not committing, run it again")

    # -- acquire / renew / release ------------------------------------------------------------
    def acquire(self) -> Lease:
        deadline = _now() + self.wait_s
        started = _now()
        holder: dict[str, Any] = {}
        while True:
            if self._try_take(holder):
                self.waited_s = _now() - started
                self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.what}", daemon=True)
                self._thread.start()
                return self
            if _now() >= deadline:
                raise LeaseHeld(
                    f"{self.what} is being written by {holder.get('host')} pid {holder.get('pid')} "
                    f"(lease renewed {holder.get('renewed_at')}, expires {holder.get('expires')}); "
                    f"waited {self.wait_s:g} s (store.lease_wait_s). Run it again when that writer is done.")
            time.sleep(min(POLL_S, max(0.01, deadline - _now())))

    def _try_take(self, holder: dict[str, Any]) -> bool:
        body = self._body()
        if self.store.create_if_absent(self.key, body):
            self._version = self._read_own_version()
            return self._version is not None
        current = self.store.read_versioned(self.key)
        if current is None:
            return False  # released and removed between the two calls: try again at once next poll
        data, version = current
        try:
            info = json.loads(data)
        except ValueError:
            info = {"released": True}  # a torn or foreign object is no lease
        holder.clear()
        holder.update(info)
        if info.get("token") == self.token:
            # Our own conditional write landed although its answer was lost (a timeout, then a
            # retry that found the object): the lease is ours.
            self._version = version
            return True
        why = self._free(info)
        if why is None:
            return False
        if self.store.replace_if_version(self.key, body, version):
            log.info("%s: took over lease (%s)", self.what, why)
            self._version = self._read_own_version()
            return self._version is not None
        return False

    def _read_own_version(self) -> str | None:
        current = self.store.read_versioned(self.key)
        if current is None:
            return None
        data, version = current
        try:
            if json.loads(data).get("token") != self.token:
                return None
        except ValueError:
            return None
        return version

    def _renew_loop(self) -> None:
        interval = max(0.2, self.ttl_s / 3)
        while not self._stop.wait(interval):
            try:
                with self._lock:
                    if self._version is None or self._stop.is_set():
                        return
                    replaced = self.store.replace_if_version(self.key, self._body(), self._version)
                    # A lost answer to a write that landed looks like a failed condition: what
                    # counts is whose token the lease now holds.
                    self._version = self._read_own_version()
                    if not replaced and self._version is None:
                        self._lost = "taken over by another writer"
                        log.error("%s: %s", self.what, self._lost)
                        return
                    if self._version is None:
                        self._lost = "taken over by another writer"
                        return
            except GlaveError as exc:
                # A store fault while renewing: keep trying; the lease stays ours until it expires.
                log.warning("%s: lease renewal failed: %s", self.what, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl_s)
        with self._lock:
            version, self._version = self._version, None
        if version is None or self._lost:
            return
        try:
            self.store.replace_if_version(self.key, self._body(released=True), version)
        except (GlaveError, StoreError) as exc:
            # The lease then simply expires after ttl; nothing else depends on this write.
            log.warning("%s: could not release lease: %s", self.what, exc)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def hold(store: ArtifactStore, run_id: str, parts: list[tuple[str, int | None]], *, ttl_s: float,
         wait_s: float) -> Iterator[list[Lease]]:
    """Hold the leases of several (stage, shard) parts at once, always taken in the given order
    (callers pass pipeline order), so two writers cannot deadlock on each other."""
    with ExitStack() as stack:
        leases = []
        for stage, shard in parts:
            what = f"run {run_id} {stage}" + (f" shard {shard}" if shard is not None else "")
            lease = Lease(store, lease_key(run_id, stage, shard), what=what, ttl_s=ttl_s, wait_s=wait_s)
            stack.enter_context(lease)
            leases.append(lease)
        yield leases


def ensure_all_held(leases: list[Lease]) -> None:
    for lease in leases:
        lease.ensure_held()
