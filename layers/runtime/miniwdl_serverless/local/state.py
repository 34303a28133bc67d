"""The local state directory: what `miniwdl-serverless run` keeps between invocations, so that
the embedded AWS starts each time with the records the earlier ones left (run records, the
call cache, every other table), and `status`/`list` can read local runs.

Layout of a state directory (default ``~/.miniwdl-serverless``, else ``--state-dir DIR`` or
``MINIWDL_SERVERLESS_STATE_DIR``)::

    state.json   every collection: each DynamoDB table of the embedded AWS, and the Step
                 Functions executions; items in DynamoDB JSON
    state.lock   locked (flock) while a save reads, merges and replaces state.json
    downloads/   miniwdl's download cache ([download_cache] dir)

A save never loses another process's records: under the lock it reads state.json again and
merges by item key (a three-way merge against what this process loaded): items this process
created or changed replace those on disk, items it deleted are deleted, and everything else on
disk (another run's, saved meanwhile) is kept. state.json is replaced atomically (a temporary
file, then rename), so a reader needs no lock. Items whose TTL attribute (``expires_at``, epoch
seconds) has passed are dropped on load and on save, as DynamoDB's TTL deletes them.

Pure apart from ``StateDir`` (the files) and ``deferred_signals``; no AWS here.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_DIR_ENV = "MINIWDL_SERVERLESS_STATE_DIR"
DEFAULT_DIR_NAME = ".miniwdl-serverless"
STATE_FILE, LOCK_FILE, DOWNLOADS = "state.json", "state.lock", "downloads"
FORMAT = 1
TTL_ATTRIBUTE = "expires_at"
LOCK_TIMEOUT_SECONDS = 60.0

Item = dict[str, Any]  # DynamoDB JSON: attribute name -> {type: value}
Key = tuple[tuple[str, Any], ...]
Warn = Callable[[str], None]


class StateError(Exception):
    """The state directory cannot be used (a newer format, a lock held too long)."""


def state_dir_path(flag: str | None, environ: Mapping[str, str]) -> Path:
    """``--state-dir``, else ``MINIWDL_SERVERLESS_STATE_DIR``, else ``~/.miniwdl-serverless``."""
    chosen = flag or environ.get(STATE_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    return Path.home() / DEFAULT_DIR_NAME


def item_key(item: Item, key_names: list[str]) -> Key:
    """An item's primary key, hashable: ((type, value), ...) in key schema order."""
    return tuple(next(iter(item[name].items())) for name in key_names)


@dataclass
class Collection:
    """The items of one table (or of the executions), by key, and what recreates the table."""

    key_names: list[str]  # hash key, then range key
    items: dict[Key, Item] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # KeySchema, AttributeDefinitions
    ttl_attribute: str = TTL_ATTRIBUTE

    @classmethod
    def of(
        cls, key_names: list[str], items: list[Item], meta: dict[str, Any] | None = None
    ) -> Collection:
        return cls(list(key_names), {item_key(i, key_names): i for i in items}, dict(meta or {}))

    def expired(self, item: Item, now: float) -> bool:
        value = item.get(self.ttl_attribute)
        if not isinstance(value, dict) or "N" not in value:
            return False
        try:
            return float(value["N"]) < now
        except ValueError:
            return False

    def live(self, now: float) -> Collection:
        items = {k: i for k, i in self.items.items() if not self.expired(i, now)}
        return Collection(self.key_names, items, self.meta, self.ttl_attribute)


@dataclass
class Snapshot:
    """Every collection of a state directory; ``roles`` names the runs and jobs tables'
    collections (``{"runs": ..., "jobs": ...}``) for the readers that need them."""

    collections: dict[str, Collection] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

    def live(self, now: float | None = None) -> Snapshot:
        """Without the expired items."""
        now = time.time() if now is None else now
        kept = {name: c.live(now) for name, c in self.collections.items()}
        return Snapshot(kept, dict(self.roles))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "roles": self.roles,
            "collections": {
                name: {
                    "key": c.key_names,
                    "ttl_attribute": c.ttl_attribute,
                    "meta": c.meta,
                    "items": list(c.items.values()),
                }
                for name, c in sorted(self.collections.items())
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> Snapshot:
        if not isinstance(data, dict) or not isinstance(data.get("collections"), dict):
            raise ValueError("not a state file")
        if data.get("format") != FORMAT:
            raise StateError(
                f"written in format {data.get('format')!r} (this version reads {FORMAT}): "
                "by another version of miniwdl-serverless"
            )
        collections = {}
        for name, body in data["collections"].items():
            collection = Collection.of(body["key"], body["items"], body.get("meta"))
            collection.ttl_attribute = body.get("ttl_attribute") or TTL_ATTRIBUTE
            collections[name] = collection
        return cls(collections, dict(data.get("roles") or {}))


def merge(disk: Snapshot, base: Snapshot, ours: Snapshot) -> Snapshot:
    """What to save: ``disk`` (state.json as it is now) with this process's changes since it
    loaded ``base`` applied (``ours`` is everything it holds now). Per item key: created or
    changed by us → ours; deleted by us → deleted; untouched by us → as on disk. A collection
    we do not hold is kept as on disk."""
    merged = Snapshot(roles={**disk.roles, **ours.roles})
    for name in sorted(disk.collections.keys() | ours.collections.keys()):
        mine = ours.collections.get(name)
        on_disk = disk.collections.get(name)
        if mine is None:
            assert on_disk is not None
            merged.collections[name] = on_disk
        else:
            merged.collections[name] = _merge_collection(on_disk, base.collections.get(name), mine)
    return merged


def _merge_collection(
    on_disk: Collection | None, loaded: Collection | None, mine: Collection
) -> Collection:
    if on_disk is None or on_disk.key_names != mine.key_names:
        return mine  # nothing there, or a table whose key changed: its old items cannot stay
    before = loaded.items if loaded is not None and loaded.key_names == mine.key_names else {}
    items = dict(on_disk.items)
    for key, item in mine.items.items():
        if before.get(key) != item:
            items[key] = item
    for key in before.keys() - mine.items.keys():
        items.pop(key, None)
    return Collection(mine.key_names, items, mine.meta, mine.ttl_attribute)


def _warn_stderr(message: str) -> None:
    import sys

    print(f"miniwdl-serverless: warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class StateDir:
    """One state directory on disk."""

    path: Path
    warn: Warn = _warn_stderr
    lock_timeout: float = LOCK_TIMEOUT_SECONDS

    @property
    def file(self) -> Path:
        return self.path / STATE_FILE

    @property
    def downloads(self) -> Path:
        return self.path / DOWNLOADS

    def exists(self) -> bool:
        return self.file.is_file()

    def read(self) -> Snapshot:
        """state.json (empty if absent; a file that cannot be parsed is reported and read as
        empty: the next save sets it aside). Raises StateError for a newer format."""
        try:
            return self._parse()
        except FileNotFoundError:
            return Snapshot()
        except (OSError, ValueError, KeyError, TypeError) as exn:
            self.warn(f"cannot read {self.file} ({exn}); starting without it")
            return Snapshot()

    def save(self, ours: Snapshot, base: Snapshot) -> Snapshot:
        """Merge ``ours`` (against ``base``, what was loaded) into state.json under the lock
        and replace the file atomically; returns what was saved (the next save's base)."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked(), deferred_signals():
            merged = merge(self._read_for_save(), base, ours).live()
            self._write(merged)
        return merged

    def _parse(self) -> Snapshot:
        with open(self.file, "rb") as infile:
            return Snapshot.from_json(json.load(infile))

    def _read_for_save(self) -> Snapshot:
        try:
            return self._parse()
        except FileNotFoundError:
            return Snapshot()
        except (OSError, ValueError, KeyError, TypeError) as exn:
            aside = self.file.with_name(f"{STATE_FILE}.unreadable-{int(time.time())}")
            os.replace(self.file, aside)
            self.warn(f"cannot read {self.file} ({exn}); kept it as {aside}")
            return Snapshot()

    def _write(self, snapshot: Snapshot) -> None:
        fd, temporary = tempfile.mkstemp(dir=self.path, prefix=".state.", suffix=".tmp")
        try:
            text = json.dumps(snapshot.to_json(), separators=(",", ":"))  # C, unlike json.dump
            with os.fdopen(fd, "w", encoding="utf-8") as outfile:
                outfile.write(text)
                outfile.flush()
                os.fsync(outfile.fileno())
            os.replace(temporary, self.file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StateError(
                            f"{self.path / LOCK_FILE} has been locked by another process for "
                            f"{self.lock_timeout:.0f} s"
                        ) from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)  # releases the lock


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection in the block: building or dumping thousands of items
    allocates objects that all stay alive, and every full collection would walk them all again
    (it made loading 20,000 items 5 times slower than 5,000)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """SIGINT and SIGTERM arriving in the block are delivered after it (a save is not cut off
    half-way). Only in the main thread, where Python runs signal handlers."""
    names = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    saved = {name: signal.getsignal(name) for name in names}
    deferring = [name for name, handler in saved.items() if handler is not None]
    for name in deferring:
        signal.signal(name, lambda signum, _frame: arrived.append(signum))
    try:
        yield
    finally:
        for name in deferring:
            signal.signal(name, saved[name])
        for signum in arrived:
            signal.raise_signal(signum)
