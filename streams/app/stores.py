"""State stores for the tables that hold a record per pair: on disk in one memory budget, or in
memory with a prefix index.

The task side's finished pairs, the coordinator's ledger and the record of successful
evaluations keep one record per pair (or evaluation); in Faust's in-memory store a worker held
every record of a request until the request ended (~190 and ~150 bytes per pair,
bench/RESULTS.md, issue 17), so its memory grew with the size of a request. Kafka Streams keeps
such state in RocksDB, and so does this store, through Faust's RocksDB store, with two changes:

- One block cache and one write-buffer budget for all of a worker's databases (Faust sizes
  each partition's database on its own: 64 MB write buffers x 3 and a 2 GB block cache), as
  Kafka Streams' bounded-memory RocksDB configuration does: a worker's state costs it at most
  :data:`CACHE_BYTES` of memory, however many pairs and partitions it holds.
- Keys are listed by prefix with a seek (``streams.keyspace``), so forgetting a batch of an
  ended request's records reads that batch, not the whole table.

The files are a cache of the changelog for one process's lifetime only (see
:class:`StateDir`): a worker deletes them when it starts and recovers every table from its
changelog, as it did with in-memory tables.

In memory (``RESUME_TABLE_STORE=memory``) the same tables keep their keys in a
:class:`streams.keyspace.PrefixIndex` (:class:`IndexedMemoryStore`), so forgetting a batch there
too reads the batch, not the table.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import faust.stores
import rocksdict
from faust.stores.memory import Store as FaustMemoryStore
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as FaustRocksStore
from mode import Service

from streams.errors import PhoenixResumeError
from streams.keyspace import PrefixIndex

#: the memory all of a worker's databases may use: blocks read, index and filter blocks, and
#: the memtables (charged to the same cache)
CACHE_BYTES = 24 * 2**20
#: the part of it memtables (writes not yet flushed to files) may take
WRITE_BUFFER_BYTES = 8 * 2**20
#: one memtable of one database: small, because a worker has a database per table partition
MEMTABLE_BYTES = 2 * 2**20

SCHEME = "bounded-rocksdb"
faust.stores.STORES.aliases[SCHEME] = f"{__name__}:BoundedRocksStore"
MEMORY_SCHEME = "indexed-memory"
faust.stores.STORES.aliases[MEMORY_SCHEME] = f"{__name__}:IndexedMemoryStore"


def store_url(table: str, *, on_disk: bool = True) -> str:
    """The ``store=`` of a table in one of these stores (Faust looks the scheme up in its
    registry).

    With a path: Faust falls back to the app's store (memory) for a URL without one, as
    ``bounded-rocksdb://`` is (an empty yarl URL is false)."""
    return f"{SCHEME if on_disk else MEMORY_SCHEME}:{table}"


class IndexedMemoryStore(FaustMemoryStore):
    """Faust's in-memory store, listing keys by prefix through a :class:`PrefixIndex`.

    The index is the store's ``data`` itself, not a view in front of the table: Faust's
    recovery writes changelog records into ``data`` directly (``apply_changelog_batch``) and
    drops the keys of partitions it no longer holds from it (``on_recovery_completed``), and
    an index kept beside it would miss those keys."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.data: PrefixIndex = PrefixIndex()

    def keys_with_prefix(self, prefix: str) -> Iterator[str]:
        """The keys (of every partition this worker holds) that start with ``prefix``."""
        return self.data.keys_with_prefix(prefix)


class StateDirInUseError(PhoenixResumeError):
    """Another live worker keeps its tables in this directory."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"another worker keeps its tables in {path}: give each worker on one machine its "
            "own RESUME_WEB_PORT (the directory is named after it) or RESUME_DATA_DIR"
        )
        self.path = path


class _Budget:
    """The cache and write-buffer manager every database of this process shares."""

    _shared: tuple[rocksdict.Cache, rocksdict.WriteBufferManager] | None = None

    @classmethod
    def get(cls) -> tuple[rocksdict.Cache, rocksdict.WriteBufferManager]:
        if cls._shared is None:
            cache = rocksdict.Cache(CACHE_BYTES)
            buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
                WRITE_BUFFER_BYTES, False, cache
            )
            cls._shared = (cache, buffers)
        return cls._shared


class _BoundedOptions(RocksDBOptions):
    """Faust's RocksDB options with small memtables and the process's shared budget."""

    def as_options(self) -> rocksdict.Options:
        cache, buffers = _Budget.get()
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(MEMTABLE_BYTES)
        options.set_max_write_buffer_number(2)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(buffers)
        blocks = rocksdict.BlockBasedOptions()
        blocks.set_bloom_filter(10, True)
        blocks.set_block_cache(cache)
        # Index and filter blocks in the cache too: outside it they grow with the data.
        blocks.set_cache_index_and_filter_blocks(True)
        blocks.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(blocks)
        return options


class BoundedRocksStore(FaustRocksStore):
    """Faust's RocksDB store in the shared budget, listing keys by prefix."""

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, driver="rocksdict", **kwargs)
        self.rocksdb_options = _BoundedOptions(use_rocksdict=True)

    def keys_with_prefix(self, prefix: str) -> Iterator[str]:
        """This worker's keys (of its active partitions) that start with ``prefix``, in order."""
        raw = self._encode_key(prefix)
        if self.key_serializer == "json":  # '"<prefix>"': the keys go on before the quote
            raw = raw[:-1]
        elif self.key_serializer != "raw":
            raise NotImplementedError(f"prefixes of {self.key_serializer} keys")
        for db in list(self._dbs_for_actives()):
            for key in db.keys(from_key=raw):
                if not key.startswith(raw):
                    break
                if key != self.offset_key:
                    yield self._decode_key(key)


class StateDir(Service):
    """The worker's table directory: its own while it runs, emptied when it starts.

    Faust writes a record to its database before the record's changelog message is sent, so
    after a crash the files may hold writes the changelog never got (a ledger entry whose
    summary count was lost, say), and Faust would trust them: recovery reads the changelog
    only from the offset the files remember. Starting empty makes the changelog the only
    truth, as with in-memory tables. A lock keeps two live workers out of one directory (their
    databases would corrupt each other).
    """

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self._lock: IO[bytes] | None = None

    def check_free(self) -> None:
        """Raise :class:`StateDirInUseError` now, before the app starts, if it is taken."""
        self._take()
        self._release()

    async def on_start(self) -> None:
        self._take()
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)

    async def on_stop(self) -> None:
        self._release()

    def _take(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(self.path.with_name(self.path.name + ".lock"), "ab")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StateDirInUseError(self.path) from None
        self._lock = lock

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file lets go of the lock
            self._lock = None
