"""Writer leases: one writer at a time per run x stage x shard, on local disk and on S3.

A lease is a small JSON object in the store (``runs/<run>/_leases/<stage>/shard-<k>.json``). It
is taken with a conditional create (S3 ``If-None-Match: *``, a hard link locally) or, when the
previous holder let go or stopped renewing, with a conditional replace of exactly the version
that was read (S3 ``If-Match``, a compare-and-swap under a lock file locally). Two writers can
therefore never both believe they hold it. The holder renews it every ``ttl/3`` from a background
thread; a holder that was killed stops renewing and its lease is free once ``ttl`` has passed,
or at once when it ran on this host and its process is gone.

Expiry is judged by the store's clock alone: a lease is expired when the store says its object
was last written more than ``ttl`` ago. The times a holder writes into the lease are for people;
a holder whose clock runs hours behind or ahead neither loses its lease early nor locks the shard
out until some future date, and the disagreement is logged with both clocks.

The holder, in turn, trusts only its own monotonic clock: it counts its lease as held for ``ttl``
(less a margin) from the moment it sent its last renewal that the store accepted. Past that, or
once a renewal found the lease taken over, :meth:`Lease.check` raises ``LeaseLost``, and the stage
runner calls it before every write, so a writer that stalled past its lease stops writing at once.

Every take of a lease raises its ``generation``; the writer's attempt folder is named after it
(:attr:`Lease.attempt`), so two attempts never write the same keys.

A writer that finds the lease held waits (polling) up to ``wait_s`` and then fails with
``LeaseHeld``, naming the holder.
"""

from __future__ import annotations

import contextlib
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
# How far a holder's own clock may disagree with the store's before it is worth a warning.
SKEW_WARN_S = 30.0
# A holder stops trusting its lease this long before ttl runs out by its own clock: S3's
# LastModified has whole seconds, and the renewal's request takes time to land.
MARGIN_S = 2.0
# The longest release waits for a renewal in flight (the pods' grace period is 60 s).
RELEASE_WAIT_S = 10.0


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
        self.generation = 0
        self._confirmed = 0.0  # monotonic time a write of ours that the store accepted was sent
        self._skew_logged = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.waited_s = 0.0

    # -- state --------------------------------------------------------------------------------
    def _body(self, released: bool = False, generation: int | None = None) -> bytes:
        now = _now()
        return json.dumps({
            "what": self.what, "token": self.token, "host": self.host, "pid": self.pid,
            "generation": self.generation if generation is None else generation, "ttl_s": self.ttl_s,
            # By the holder's clock, for people: expiry is judged by the store's clock.
            "renewed_at": _iso(now), "expires_at": now + self.ttl_s, "expires": _iso(now + self.ttl_s),
            "released": released,
        }, sort_keys=True).encode()

    def _free(self, current: dict[str, Any], age_s: float) -> str | None:
        """Why a lease someone else wrote may be taken now, or None while it is held. ``age_s`` is
        the store's own measure of how long ago the lease was last written."""
        if current.get("released"):
            return "released"
        self._note_skew(current, age_s)
        ttl = _float(current.get("ttl_s"), self.ttl_s)
        if age_s > ttl:
            return f"expired: not renewed for {age_s:.0f} s by the store's clock (ttl {ttl:g} s)"
        if current.get("host") == self.host and isinstance(current.get("pid"), int) and \
                current["pid"] not in (self.pid, 1) and not pid_alive(current["pid"]):
            # pid 1 is every container's entrypoint: alive or not, it says nothing here.
            return "holder process gone"
        return None

    def _note_skew(self, current: dict[str, Any], age_s: float) -> None:
        """Log once when the holder's clock disagrees with the store's (and so with ours)."""
        renewed = _float(current.get("expires_at"), 0.0) - _float(current.get("ttl_s"), self.ttl_s)
        if self._skew_logged or renewed <= 0:
            return
        skew = renewed - (_now() - age_s)
        if abs(skew) > SKEW_WARN_S:
            self._skew_logged = True
            direction = "ahead of" if skew > 0 else "behind"
            log.warning("%s: the lease holder %s pid %s writes times %.0f s %s the store's clock (its lease "
                        "says it expires %s); expiry is judged by the store's clock, so it expires %g s after "
                        "its last renewal whatever it says", self.what, current.get("host"), current.get("pid"),
                        abs(skew), direction, current.get("expires"), _float(current.get("ttl_s"), self.ttl_s))

    @property
    def lost(self) -> str | None:
        return self._lost

    @property
    def attempt(self) -> str:
        """The folder this holder's attempt writes to: unique to this take of the lease."""
        return f"attempt-{self.generation:06d}-{self.token[:8]}"

    def held_for_s(self) -> float:
        """How much longer this holder may count the lease as its own, by its own clock."""
        return self.ttl_s - min(MARGIN_S, self.ttl_s / 10) - (time.monotonic() - self._confirmed)

    def check(self) -> None:
        """Raise ``LeaseLost`` unless this holder can still prove the lease is its own: not taken
        over, and renewed within ``ttl`` by its own clock. Cheap: no store request."""
        if self._lost:
            raise LeaseLost(f"{self.what}: lease lost ({self._lost}); stopped writing, run it again")
        if self._version is not None and self.held_for_s() <= 0:
            self._lost = (f"not renewed for {time.monotonic() - self._confirmed:.0f} s "
                          f"(ttl {self.ttl_s:g} s): another writer may hold it now")
            log.error("%s: %s", self.what, self._lost)
            raise LeaseLost(f"{self.what}: lease lost ({self._lost}); stopped writing, run it again")

    def verify(self) -> None:
        """:meth:`check`, then read the lease back: the store must still hold this holder's token.
        The runner calls it before a commit and before it removes anything."""
        self.check()
        current = self.store.read_versioned(self.key)
        token = None
        if current is not None:
            with contextlib.suppress(ValueError):
                token = json.loads(current[0]).get("token")
        if token != self.token:
            self._lost = "taken over by another writer"
            raise LeaseLost(f"{self.what}: lease lost ({self._lost}); stopped writing, run it again")

    def ensure_held(self) -> None:
        """Raise ``LeaseLost`` when the lease expired or was taken over while this writer worked."""
        self.verify()

    # -- acquire / renew / release ------------------------------------------------------------
    def acquire(self) -> Lease:
        deadline = _now() + self.wait_s
        started = _now()
        holder: dict[str, Any] = {}
        while True:
            if self._try_take(holder):
                self.waited_s = _now() - started
                thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.what}", daemon=True)
                try:
                    thread.start()
                except BaseException:
                    # No renewal thread (out of threads or memory): give the lease back at once
                    # rather than hold it unrenewed until it expires.
                    self.release()
                    raise
                self._thread = thread
                return self
            if _now() >= deadline:
                raise LeaseHeld(
                    f"{self.what} is being written by {holder.get('host')} pid {holder.get('pid')} "
                    f"(lease renewed {holder.get('renewed_at')}, expires {holder.get('expires')}); "
                    f"waited {self.wait_s:g} s (store.lease_wait_s). Run it again when that writer is done.")
            time.sleep(min(POLL_S, max(0.01, deadline - _now())))

    def _try_take(self, holder: dict[str, Any]) -> bool:
        sent = time.monotonic()
        if self.store.create_if_absent(self.key, self._body(generation=1)):
            return self._taken(1, sent)
        current = self.store.read_aged(self.key)
        if current is None:
            return False  # released and removed between the two calls: try again at once next poll
        data, version, age_s = current
        try:
            info = json.loads(data)
            if not isinstance(info, dict):
                raise ValueError("not an object")
        except ValueError:
            info = {"released": True}  # a torn or foreign object is no lease
        holder.clear()
        holder.update(info)
        generation = int(_float(info.get("generation"), 0.0)) + 1
        if info.get("token") == self.token:
            # Our own conditional write landed although its answer was lost (a timeout, then a
            # retry that found the object): the lease is ours.
            self.generation, self._version, self._confirmed = int(_float(info.get("generation"), 1.0)), version, sent
            return True
        why = self._free(info, age_s)
        if why is None:
            return False
        sent = time.monotonic()
        if self.store.replace_if_version(self.key, self._body(generation=generation), version):
            log.info("%s: took over lease (%s)", self.what, why)
            return self._taken(generation, sent)
        return False

    def _taken(self, generation: int, sent: float) -> bool:
        self.generation = generation
        self._version = self._read_own_version()
        self._confirmed = sent
        return self._version is not None

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
                    sent = time.monotonic()
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
                    if replaced:
                        self._confirmed = sent
            except GlaveError as exc:
                # A store fault while renewing: keep trying while the lease is still ours by our
                # own clock; past that the attempt must stop writing (check() says so).
                log.warning("%s: lease renewal failed: %s", self.what, exc)
            if self.held_for_s() <= 0 and not self._lost:
                self._lost = f"could not renew it within its ttl of {self.ttl_s:g} s"
                log.error("%s: %s; the attempt stops at its next write", self.what, self._lost)
                return

    def release(self) -> None:
        self._stop.set()
        # Bounded: release runs inside a pod's termination grace period, and a renewal stuck in a
        # slow store call must not eat it. A lease not released in time simply expires after ttl.
        bound = min(self.ttl_s, RELEASE_WAIT_S)
        if self._thread is not None:
            self._thread.join(timeout=bound)
        if not self._lock.acquire(timeout=bound):
            log.warning("%s: renewal still busy after %.0f s; the lease will expire after its ttl", self.what, bound)
            return
        try:
            version, self._version = self._version, None
        finally:
            self._lock.release()
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


def _float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default
