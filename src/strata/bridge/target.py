"""``target-strata``: a Singer target that loads streams into the metadata store as root features.

It reads its input in chunks (up to ``chunk_bytes``, or whatever arrived within
``flush_seconds``), never record by record: DuckDB parses each chunk of JSON lines in one
scan, takes every property out typed, and hashes every field's value inside the query (the
distinct values of a property whose values repeat are hashed once, and joined). A chunk is one
transaction per stream. Per stream, only samples whose field values changed are written
(:meth:`MetadataStore.write_changed`; with a DuckDB store, ``DuckDBStore.write_changed_from``
in the store's own connection, so rows never leave DuckDB), so a re-read of unchanged rows adds
nothing.

Message by message, in input order:

- ``SCHEMA`` sets the stream's properties and key properties; the stream's feature is the one
  the code defines under its key, or one defined from the schema (``bridge/streams.py``);
- ``RECORD`` rows are loaded at the end of the chunk (or before the next SCHEMA or
  ACTIVATE_VERSION of their stream); the last record of a sample in a chunk wins; a record
  with ``_sdc_deleted_at`` set removes its sample;
- ``ACTIVATE_VERSION`` (full-table syncs) removes every live sample of the stream that no record
  of that version named, once records of that version were seen;
- ``STATE`` is printed on stdout only after the rows before it are committed.

Run by ``strata run``, it finds the run's id in ``STRATA_RUN_ID`` and writes it, with the
stream's name, on every row it writes (columns ``_strata_run`` and ``_strata_stream``): a row
is written only when a field's value changed, so a sample's history says which run last
changed each field (``strata why``). Both are constant per write: DuckDB stores such a column
in a few bytes per row group; a row-oriented store keeps the text on every row it writes.

The data version of a field is ``H(<the value as text>)`` with the store's hash algorithm: the
value is first read as the schema's type, so ``1.50`` and ``1.5`` hash alike; strings are
hashed as they are, numbers and booleans in DuckDB's text form, nested values as compact
JSON, and a missing or null value encodes as ``-1:``. An array of one scalar type is stored as a
list (``bridge/streams.py``) and hashed as its compact JSON text, the text the JSON column it
was before held, so a store loaded before lists keeps its data versions (number arrays excepted:
DuckDB writes ``2`` as ``2.0``, so such samples show as changed once). Run by ``strata run …
target-strata``: the pipeline passes the project through ``STRATA_PROJECT_ROOT`` and
``STRATA_ENVIRONMENT``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import DefinitionError, StrataError, UsageError
from strata.resolve.sql import DUCKDB, ident, literal

if TYPE_CHECKING:
    from collections.abc import Iterator

    import duckdb

    from strata.features.graph import FeatureGraph
    from strata.project.project import Project
    from strata.stores.base import MetadataStore

NAME = "target-strata"
DEFAULT_CHUNK_BYTES = 256 * 1024 * 1024
DEFAULT_FLUSH_SECONDS = 2.0
_READ = 4 << 20
_TEXT = re.compile(rb"\S")
# Working tables in the loader's connection (the store's own, for DuckDB): `$` cannot appear in
# a feature's table name, so they never collide with one.
MSGS = ident("strata$msgs")
ROWS = ident("strata$rows")
LIVE = ident("strata$live")
RAW = ident("strata$raw")
RUN_COLUMN = "_strata_run"
"""The column holding the id of the ``strata run`` that wrote a row (``strata why`` reads it)."""
STREAM_COLUMN = "_strata_stream"
"""The column holding the stream a row was loaded from."""
LOOKUP_MIN_RECORDS = 4096
"""Flushes with fewer records hash every value: the lookups' extra queries would cost more."""
LOOKUP_SAMPLE = 2048
LOOKUP_RATIO = 8


def seen_table(key: str) -> str:
    """The temp table of (ids, version) of a stream's records seen in the current full-table sync."""
    return ident(f"strata$seen${key}")


_MESSAGE_COLUMNS = (
    "{type: 'VARCHAR', stream: 'VARCHAR', record: 'JSON', value: 'JSON', schema: 'JSON', "
    "key_properties: 'JSON', version: 'BIGINT'}"
)


@dataclass
class Stream:
    """What the loader knows about one stream."""

    name: str
    key: str
    properties: dict[str, str]
    """Property -> DuckDB column type, in schema order."""
    key_properties: list[str]
    fields: dict[str, str]
    """Field key -> the property it versions (``Amount_c`` -> ``Amount__c``; mostly the same name)."""
    flushed: int = 0
    """Message number up to which records are loaded."""
    counts: dict[str, int] = field(
        default_factory=lambda: {"records": 0, "added": 0, "changed": 0, "unchanged": 0, "removed": 0}
    )


class Loader:
    """Loads Singer messages into a store; one per run."""

    def __init__(
        self, project: Project | None, store: MetadataStore, graph: FeatureGraph, config: dict[str, Any]
    ) -> None:
        import duckdb

        self.project = project
        self.store = store
        self.graph = graph
        self.prefix = str(config.get("key_prefix") or "")
        from strata.history.model import RUN_ID_VARIABLE

        self.run_id = os.environ.get(RUN_ID_VARIABLE) or None
        """The ``strata run`` this loader runs in, written on each row (``RUN_COLUMN``); None outside one."""
        self.streams: dict[str, Stream] = {}
        # A DuckDB store lends its connection: records are parsed, hashed and written without
        # leaving DuckDB. Other stores get Arrow tables from a private in-memory connection.
        from strata.stores.duckdb.store import DuckDBStore

        self.duckdb_store = store if isinstance(store, DuckDBStore) else None
        self.con: duckdb.DuckDBPyConnection = self.duckdb_store.con if self.duckdb_store else duckdb.connect()
        scratch = scratch_dir(_chunk_bytes(config))
        sweep(scratch)
        self._tmp = Path(tempfile.mkdtemp(prefix=f"target-strata-{os.getpid()}-", dir=scratch))
        self._chunk = self._tmp / "chunk.jsonl"
        self._base = 0
        self.state: Any = None
        self.states_emitted = 0
        self._typed = False
        self.seconds = {"read": 0.0, "compare_write": 0.0}
        """Time spent parsing chunks (``read_json``) and hashing, comparing and writing their rows."""
        self.chunks = 0
        self._refresh_graph()

    def _refresh_graph(self) -> None:
        """Give the store the whole graph, or only its roots while it is incomplete.

        Downstream features may name streams that have not arrived yet (the first ingest).
        """
        try:
            self.graph.validate()
        except DefinitionError:
            self.store.graph = self.graph.roots()
        else:
            self.store.graph = self.graph

    def close(self) -> None:
        """Close the private connection; temp objects in a store's connection go when the store closes."""
        if self.duckdb_store is None:
            self.con.close()
        self._chunk.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._tmp.rmdir()

    # -- chunks ----------------------------------------------------------------------------

    def load_chunk(self, data: bytes | bytearray) -> None:
        """Parse and load complete lines; print the last state once its rows are committed.

        The lines up to the chunk's last SCHEMA message are read generically (records as JSON,
        parsed again per stream); the lines after it — usually all of them — are read with the
        records typed by the known schemas, so each line is parsed once.
        """
        if not _TEXT.search(data):
            return
        self.chunks += 1
        last = data.rfind(b'"SCHEMA"')
        cut = 0 if last < 0 else (data.find(b"\n", last) + 1 or len(data))
        view = memoryview(data)
        if cut:
            self._load_part(view[:cut], None)
        if cut < len(data) and _TEXT.search(data, cut):
            self._load_part(view[cut:], self._record_type())
        if self.state is not None:
            sys.stdout.write(json.dumps(self.state) + "\n")
            sys.stdout.flush()
            self.state = None
            self.states_emitted += 1

    def _record_type(self) -> str | None:
        """One STRUCT type for the records of every known stream, or None if their types clash."""
        merged: dict[str, str] = {}
        for stream in self.streams.values():
            for name, kind in stream.properties.items():
                if merged.setdefault(name, kind) != kind:
                    return None
        if not merged:
            return None
        merged.setdefault("_sdc_deleted_at", "VARCHAR")
        return "STRUCT(" + ", ".join(f"{ident(name)} {kind}" for name, kind in merged.items()) + ")"

    def _load_part(self, data: memoryview, record_type: str | None) -> None:
        self._typed = record_type is not None
        columns = _MESSAGE_COLUMNS.replace("record: 'JSON'", f"record: {literal(record_type or 'JSON')}")
        started = time.perf_counter()
        self._chunk.write_bytes(data)
        # No maximum_object_size: a large one slows every read (DuckDB sizes buffers by it), and
        # DuckDB 2.0 reads longer lines anyway (a test loads one of 17 MB).
        try:
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {MSGS} AS SELECT * "
                f"FROM read_json(?, format = 'newline_delimited', columns = {columns})",
                [str(self._chunk)],
            )
        except Exception as exc:  # noqa: BLE001 - DuckDB's parser errors, as one line
            detail = " ".join(str(exc).replace(f'in file "{self._chunk}", ', "").split())[:300]
            raise UsageError(f"input is not Singer JSON lines: {detail}", "check the extractor's output") from None
        finally:
            self._chunk.unlink(missing_ok=True)  # in /dev/shm it is memory: hold it only while DuckDB reads
        count = int(self.con.execute(f"SELECT count(*) FROM {MSGS}").fetchall()[0][0])
        parsed = time.perf_counter()
        self.seconds["read"] += parsed - started
        controls = self.con.execute(
            f"SELECT {self._n()}, type, stream, CAST(schema AS VARCHAR), CAST(key_properties AS VARCHAR), "
            f"CAST(value AS VARCHAR), version FROM {MSGS} WHERE type IS DISTINCT FROM 'RECORD' ORDER BY rowid"
        ).fetchall()
        self._check_records_have_schemas(controls)
        for n, kind, stream, schema, keys, value, version in controls:
            if kind == "SCHEMA":
                self._schema(int(n), stream, json.loads(schema or "{}"), json.loads(keys or "[]"))
            elif kind == "STATE":
                self.state = json.loads(value) if value is not None else None
            elif kind == "ACTIVATE_VERSION":
                self._activate(int(n), stream, version)
            elif kind is None:
                raise UsageError(f"message {n} has no `type`", "check the extractor's output")
        end = self._base + count + 1
        for stream in self.streams.values():
            self._flush(stream, end)
        self._base += count
        self.con.execute(f"DROP VIEW IF EXISTS {LIVE}")
        self.con.execute(f"DROP VIEW IF EXISTS {ROWS}")
        self.con.execute(f"DROP TABLE {MSGS}")
        self.seconds["compare_write"] += time.perf_counter() - parsed

    def _n(self) -> str:
        """The message number (from 1 over the whole input) of a row of the messages table.

        The table is created from one scan in input order, so its ``rowid`` is the line's place.
        """
        return f"(rowid + {self._base + 1})"

    def _check_records_have_schemas(self, controls: list[tuple[Any, ...]]) -> None:
        firsts = self.con.execute(
            f"SELECT stream, min({self._n()}) FROM {MSGS} WHERE type = 'RECORD' GROUP BY stream"
        ).fetchall()
        schema_at = {}
        for n, kind, stream, *_ in controls:
            if kind == "SCHEMA" and stream not in schema_at:
                schema_at[stream] = n
        for stream, first in firsts:
            if stream in self.streams:
                continue
            if stream not in schema_at or schema_at[stream] > first:
                raise UsageError(
                    f"a RECORD for stream `{stream}` came before any SCHEMA for it",
                    "the extractor must declare every stream with a SCHEMA message first",
                )

    # -- messages --------------------------------------------------------------------------

    def _schema(self, n: int, name: str, schema: dict[str, Any], keys: list[str]) -> None:
        from strata.bridge.streams import column_type, feature_key

        properties = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(properties, dict):
            raise UsageError(f"the SCHEMA of stream `{name}` has no properties", "check the extractor's catalog")
        old = self.streams.get(name)
        if old is not None:
            self._flush(old, n)
        columns = {str(p): column_type(s) for p, s in properties.items()}
        bad = [p for p in columns if p.startswith(("strata_", "_strata_")) or '"' in p or "'" in p]
        if bad:
            raise UsageError(f"stream `{name}` has properties strata cannot store: {', '.join(bad)}", "rename them")
        key = feature_key(name, self.prefix)
        fields = self._feature_for(name, key, columns, [str(k) for k in keys])
        stream = Stream(name, key, columns, list(self.graph.spec(key).id_columns), fields)
        if old is not None:
            stream.counts, stream.flushed = old.counts, n
        self.streams[name] = stream
        ids = ", ".join(f"{ident(c)} {columns[c]}" for c in stream.key_properties)
        self.con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {seen_table(key)} ({ids}, version BIGINT)")

    def _feature_for(self, stream: str, key: str, columns: dict[str, str], keys: list[str]) -> dict[str, str]:
        """The fields of the stream's feature and their properties; defines (and records) it when no code does."""
        from strata.bridge.streams import IMPORT_MODULE, check_spec, record_spec, spec_for_stream, stream_fields

        properties = stream_fields(columns)
        if key in self.graph:
            cls = self.graph.feature(key)
            if cls.__module__ != IMPORT_MODULE:  # defined in code: it must fit
                check_spec(cls.spec, stream, columns, keys)
                return {f.key.name: properties[f.key.name] for f in cls.spec.fields}
        spec = spec_for_stream(key, stream, columns, keys)
        if key in self.graph and self.graph.spec(key).to_json() != spec.to_json():
            self.graph.remove(key)
        if key not in self.graph:
            self.graph.add_spec(spec, import_path=f"{IMPORT_MODULE}:{spec.key.table_name}")
            self._refresh_graph()
            if self.project is not None:
                record_spec(self.project, spec)
        return {f.key.name: properties[f.key.name] for f in spec.fields}

    def _activate(self, n: int, name: str, version: int | None) -> None:
        stream = self.streams.get(name)
        if stream is None or version is None:
            return
        self._flush(stream, n)
        seen = seen_table(stream.key)
        if not self.con.execute(f"SELECT count(*) FROM {seen} WHERE version = ?", [version]).fetchall()[0][0]:
            return  # the start of a full-table sync: nothing of this version has come yet
        if self.store.has_feature(stream.key):
            ids = stream.key_properties
            live = self.store.read(stream.key, columns=ids).to_arrow()
            self.con.register("strata_live", live)
            try:
                keys = ", ".join(ident(c) for c in ids)
                gone = self.con.sql(
                    f"SELECT {keys} FROM strata_live WHERE ({keys}) NOT IN "
                    f"(SELECT {keys} FROM {seen} WHERE version = {int(version)})"
                ).to_arrow_table()
            finally:
                self.con.unregister("strata_live")
            if gone.num_rows:
                stream.counts["removed"] += self.store.delete(stream.key, gone)
        self.con.execute(f"DELETE FROM {seen} WHERE version <= ?", [version])

    # -- loading ---------------------------------------------------------------------------

    def _flush(self, stream: Stream, upto: int) -> None:
        """Load the stream's records numbered after ``stream.flushed`` and before ``upto``.

        One scan of the records counts them, their deletions, missing keys, distinct samples
        and full-table-sync versions. The rows are a view, never materialized: the write
        computes the data versions once, and the queries for deletions and versions seen (run
        only when there are some) read ids and flags, from which DuckDB prunes the hashes.
        """
        lo, stream.flushed = stream.flushed, max(stream.flushed, upto - 1)
        if upto - 1 <= lo:
            return
        records = self._records(stream, lo, upto)
        ids = [ident(c) for c in stream.key_properties]
        no_key = " OR ".join(f"t.{c} IS NULL" for c in ids) or "false"
        samples = f"count(DISTINCT ({', '.join(f't.{c}' for c in ids)}))" if ids else "count(*)"
        total, deleted, keyless, distinct, versioned = self.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE d), count(*) FILTER (WHERE {no_key}), {samples}, "
            f"count(version) FROM ({records})"
        ).fetchall()[0]
        repeated = distinct < total  # a sample (or a missing key) twice: the last record of each wins
        if repeated:
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {ROWS} AS {self._rows_sql(stream, records, last=True)}")
            total, deleted, keyless = self.con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE strata__deleted), "
                f"count(*) FILTER (WHERE {no_key.replace('t.', '')}) FROM {ROWS}"
            ).fetchall()[0]
        if keyless:
            raise UsageError(
                f"{keyless} record(s) of stream `{stream.name}` have no value for a key property "
                f"({', '.join(stream.key_properties)})",
                "every record needs its key properties; nothing of this batch was written",
            )
        if total == 0:
            return
        stream.counts["records"] += int(total)
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {ROWS} AS {self._rows_sql(stream, records, last=repeated)}")
        counts = {"live": int(total - deleted), "deleted": int(deleted)}
        self._load_rows(stream, (lo, upto), counts, repeated=repeated)
        if versioned:
            self.con.execute(
                f"INSERT INTO {seen_table(stream.key)} SELECT {', '.join(ids)}, strata__version FROM {ROWS} "
                "WHERE strata__version IS NOT NULL"
            )

    def _load_rows(self, stream: Stream, span: tuple[int, int], counts: dict[str, int], *, repeated: bool) -> None:
        """Write the live rows of the ``ROWS`` view that changed and remove the deleted ones.

        ``span``: the records' numbers are in ``(lo, upto)``; ``counts``: how many are live and deleted.
        """
        keep = [*(ident(c) for c in stream.properties), *(ident("strata_dv__" + name) for name in stream.fields)]
        if self.run_id is not None:
            keep += [
                f"{literal(self.run_id)} AS {ident(RUN_COLUMN)}",
                f"{literal(stream.name)} AS {ident(STREAM_COLUMN)}",
            ]
        lo, upto = span
        if counts["live"] and self.duckdb_store is not None:
            self._write_changed(stream, lo, upto, keep, repeated=repeated, live=counts["live"])
        elif counts["live"]:
            records = self._records(stream, lo, upto)
            with self._lookups(stream, records, counts["live"]) as lookups:
                rows = self._rows_sql(stream, records, last=repeated, lookups=lookups)
                live = f"SELECT {', '.join(keep)} FROM ({rows}) WHERE NOT strata__deleted"
                table = self.con.sql(live).to_arrow_table()
            written = self.store.write_changed(stream.key, table)
            for name, value in written.items():
                stream.counts[name] += value
        if counts["deleted"] and self.store.has_feature(stream.key):
            ids = ", ".join(ident(c) for c in stream.key_properties)
            gone = self.con.sql(f"SELECT {ids} FROM {ROWS} WHERE strata__deleted").to_arrow_table()
            stream.counts["removed"] += self.store.delete(stream.key, gone)

    @contextlib.contextmanager
    def _lookups(self, stream: Stream, records: str, count: int) -> Iterator[dict[str, str]]:
        """Temp tables of (text, data version) for the properties whose values repeat: property -> table.

        ``records``: those to hash, or more (a superset only hashes a few more texts); ``count``:
        how many will be hashed.

        A property whose first ``LOOKUP_SAMPLE`` records hold at most one distinct text in
        ``LOOKUP_RATIO`` gets its distinct texts hashed once, and each row joins its data version
        by text (a flag, a status, a date, mostly-null columns); the rest are hashed row by row.
        Joined by the text the version hashes, so values equal as numbers but written apart
        (``0.0``, ``-0.0``) keep their own versions. Not for flushes under ``LOOKUP_MIN_RECORDS``.
        """
        if count < LOOKUP_MIN_RECORDS:
            yield {}
            return
        props = list(dict.fromkeys(stream.fields.values()))
        texts = [_text(stream.properties[p], f"t.{ident(p)}") for p in props]
        sample = self.con.execute(
            f"SELECT count(*), {', '.join(f'count(DISTINCT {text})' for text in texts)} "
            f"FROM (SELECT * FROM ({records}) LIMIT {LOOKUP_SAMPLE})"
        ).fetchall()[0]
        version = DUCKDB.hash(self.store.hash_algorithm, DUCKDB.encoded("v"))
        lookups: dict[str, str] = {}
        try:
            for i, (prop, text, distinct) in enumerate(zip(props, texts, sample[1:], strict=True)):
                if distinct * LOOKUP_RATIO > sample[0]:
                    continue
                lookups[prop] = table = ident(f"strata$dv${i}")
                self.con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT v, {version} AS h "
                    f"FROM (SELECT DISTINCT {text} AS v FROM ({records}))"
                )
            yield lookups
        finally:
            for table in lookups.values():
                self.con.execute(f"DROP TABLE IF EXISTS {table}")

    def _write_changed(self, stream: Stream, lo: int, upto: int, keep: list[str], *, repeated: bool, live: int) -> None:
        """Write the live records numbered in ``(lo, upto)`` that changed, in the DuckDB store's connection.

        Records whose fields' texts equal the live row's are found first, by a join that reads
        raw values only; the rest alone are hashed and compared by data version, and when no
        record is left (``live`` of them were same) nothing is written. On a re-read of an
        unchanged source nothing is hashed. (When a sample repeats in the chunk every record
        goes through the hashing view, which keeps the last one.)
        """
        assert self.duckdb_store is not None
        same = None
        if not repeated:
            keys = [f"t.{ident(k)} AS {ident(k)}" for k in stream.key_properties]
            values = [f"t.{ident(p)} AS {ident(p)}" for p in dict.fromkeys(stream.fields.values())]
            raw = f"SELECT {', '.join(keys + values)} FROM ({self._records(stream, lo, upto)}) WHERE NOT d"
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {RAW} AS {raw}")
            texts = {name: (prop, _text(stream.properties[prop], "{}")) for name, prop in stream.fields.items()}
            same = self.duckdb_store.same_rows(stream.key, RAW, texts)
        try:
            unchanged = 0 if same is None else int(self.con.execute(f"SELECT count(*) FROM {same}").fetchall()[0][0])
            if unchanged == live:
                counts = {"added": 0, "changed": 0, "unchanged": unchanged}
            else:
                records = self._records(stream, lo, upto, exclude=same)
                with self._lookups(stream, self._records(stream, lo, upto), live - unchanged) as lookups:
                    rows = self._rows_sql(stream, records, last=repeated, lookups=lookups)
                    live_rows = f"SELECT {', '.join(keep)} FROM ({rows}) WHERE NOT strata__deleted"
                    self.con.execute(f"CREATE OR REPLACE TEMP VIEW {LIVE} AS {live_rows}")
                    counts = self.duckdb_store.write_changed_from(stream.key, LIVE, checked=True)
                counts["unchanged"] += unchanged
        finally:
            if same is not None:
                self.con.execute(f"DROP TABLE IF EXISTS {same}")
            self.con.execute(f"DROP VIEW IF EXISTS {RAW}")
        for name, value in counts.items():
            stream.counts[name] += value

    def _records(self, stream: Stream, lo: int, upto: int, exclude: str | None = None) -> str:
        """The stream's records numbered in ``(lo, upto)``: number, version, deletion flag and typed values ``t``.

        Records read typed are a struct already; others are parsed once with ``json_transform``.
        ``exclude``: a table of ids whose records are left out.
        """
        if self._typed:  # records were read typed: every known property is a struct field already
            deleted, typed = "record._sdc_deleted_at IS NOT NULL", "record"
        else:
            struct = literal(json.dumps({p: _transform_type(kind) for p, kind in stream.properties.items()}))
            deleted, typed = (
                "json_extract_string(record, '$._sdc_deleted_at') IS NOT NULL",
                f"json_transform(record, {struct})",
            )
        n = self._n()
        where = f"type = 'RECORD' AND stream = {literal(stream.name)} AND {n} > {lo} AND {n} < {upto}"
        select = f"SELECT {n} AS n, version, {deleted} AS d, {typed} AS t FROM {MSGS} WHERE {where}"
        if exclude is None:
            return select
        on = " AND ".join(f"r.t.{ident(k)} = x.{ident(k)}" for k in stream.key_properties)
        return f"SELECT r.* FROM ({select}) r ANTI JOIN {exclude} x ON {on}"

    def _rows_sql(self, stream: Stream, records: str, *, last: bool, lookups: dict[str, str] | None = None) -> str:
        """Typed columns, one data version per field and a deletion flag; the last record per sample.

        A field's data version hashes the value's text form (nested values as JSON text), or is
        joined from its property's lookup table (``_lookups``).
        ``last``: some sample has several records here, keep only the last one.
        """
        algorithm = self.store.hash_algorithm
        lookups = lookups or {}
        columns, joins = [], []
        for prop, kind in stream.properties.items():
            value = f"r.t.{ident(prop)}"
            columns.append(f"{'CAST(' + value + ' AS VARCHAR)' if kind == 'JSON' else value} AS {ident(prop)}")
        aliases = {prop: f"l{i}" for i, prop in enumerate(lookups)}
        for prop, table in lookups.items():
            text = _text(stream.properties[prop], f"r.t.{ident(prop)}")
            joins.append(f"LEFT JOIN {table} {aliases[prop]} ON {aliases[prop]}.v IS NOT DISTINCT FROM {text}")
        for name, prop in stream.fields.items():
            text = _text(stream.properties[prop], f"r.t.{ident(prop)}")
            version = f"{aliases[prop]}.h" if prop in lookups else DUCKDB.hash(algorithm, DUCKDB.encoded(text))
            columns.append(f"{version} AS {ident('strata_dv__' + name)}")
        source = records
        keys = ", ".join(f"t.{ident(k)}" for k in stream.key_properties)
        if last and keys:
            source = f"SELECT * FROM ({records}) QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY n DESC) = 1"
        return (
            f"SELECT {', '.join(columns)}, r.d AS strata__deleted, r.version AS strata__version "
            f"FROM ({source}) r {' '.join(joins)}"
        )

    def summary(self, opened: float) -> list[str]:
        """One line per stream (its counts), then one of where the loader's time went.

        ``opened``: seconds to load the feature graph and open the store.
        """
        return [
            f"stream {s.name} -> feature {s.key}: " + ", ".join(f"{count} {what}" for what, count in s.counts.items())
            for s in self.streams.values()
        ] + [
            (
                f"{self.chunks} chunk(s): {opened:.3f} s loading the features and opening the store, "
                f"{self.seconds['read']:.3f} s reading records, "
                f"{self.seconds['compare_write']:.3f} s hashing, comparing and writing"
            )
        ]


def _is_list(kind: str) -> bool:
    """Whether a column type is a list (``VARCHAR[]``): its values hash as their JSON text."""
    return kind.endswith("[]")


def _text(kind: str, value: str) -> str:
    """The text a field's data version hashes: the value as VARCHAR, a list as its JSON text."""
    return f"CAST({'to_json(' + value + ')' if _is_list(kind) else value} AS VARCHAR)"


def _transform_type(kind: str) -> Any:
    """A column type as ``json_transform`` spells it: a list type is ``[item]``."""
    return [_transform_type(kind[:-2])] if _is_list(kind) else kind


# -- input -----------------------------------------------------------------------------------


def chunks(fd: int, max_bytes: int, flush_seconds: float) -> Iterator[bytearray]:
    """Complete lines from ``fd``: a chunk when ``max_bytes`` arrived, input paused, or at the end."""
    buffer = bytearray()
    since: float | None = None
    while True:
        timeout = None if since is None else max(0.0, since + flush_seconds - time.monotonic())
        ready, _, _ = select.select([fd], [], [], timeout)
        data = os.read(fd, _READ) if ready else b""
        if ready and not data:
            if _TEXT.search(buffer):
                yield buffer
            return
        if data:
            buffer += data
            since = since or time.monotonic()
        due = since is not None and time.monotonic() - since >= flush_seconds
        if len(buffer) >= max_bytes or (due and buffer):
            cut = buffer.rfind(b"\n") + 1
            if cut:
                rest = buffer[cut:]  # a partial line: small
                del buffer[cut:]
                yield buffer
                buffer = rest
            since = time.monotonic() if buffer else None


def scratch_dir(chunk_bytes: int, shm: str = "/dev/shm") -> str | None:  # noqa: S108 - mkdtemp in it
    """Where chunks are written for DuckDB to read: memory-backed ``/dev/shm`` when it has room.

    Writing a 226 MB chunk there takes ~0.1 s against 0.3-0.6 s in a disk-backed temp dir; the
    pages are memory either way. Containers often give ``/dev/shm`` only 64 MB: then the
    default temp dir (``None``).
    """
    try:
        stat = os.statvfs(shm)
    except OSError:
        return None
    if not os.access(shm, os.W_OK) or stat.f_bavail * stat.f_frsize < 2 * chunk_bytes:
        return None
    return shm


def sweep(scratch: str | None) -> None:
    """Remove this user's scratch dirs of loaders that were killed (pid gone): in /dev/shm they hold memory."""
    from strata.history.model import pid_alive

    for path in Path(scratch or tempfile.gettempdir()).glob("target-strata-*-*"):
        pid = path.name.split("-")[2]
        with contextlib.suppress(OSError):
            if not pid.isdigit() or path.stat().st_uid != os.getuid() or pid_alive(int(pid)):
                continue
            for item in path.iterdir():
                item.unlink(missing_ok=True)
            path.rmdir()


def _chunk_bytes(config: dict[str, Any]) -> int:
    return int(config.get("chunk_bytes") or DEFAULT_CHUNK_BYTES)


# -- entry point ---------------------------------------------------------------------------


def _project(config: dict[str, Any]) -> Project:
    from strata.project.project import Project, find_root

    root = config.get("project_dir") or os.environ.get("STRATA_PROJECT_ROOT")
    start = Path(root) if root else find_root(Path.cwd())
    return Project(start, environment=os.environ.get("STRATA_ENVIRONMENT") or None)


def run(config: dict[str, Any], fd: int) -> list[str]:
    """Load everything from ``fd`` into the configured store; return the per-stream summary."""
    from strata.features.project import load_graph, make_store, opened, store_config

    started = time.perf_counter()
    project = _project(config)
    graph = load_graph(project, check=False)
    name = config.get("store") or None
    store = make_store(project, name, graph=graph)
    max_bytes = _chunk_bytes(config)
    flush_seconds = float(config.get("flush_seconds") or DEFAULT_FLUSH_SECONDS)
    with opened(store, store_config(project, name)), graph.use():
        loader = Loader(project, store, graph, config)
        opening = time.perf_counter() - started
        try:
            for chunk in chunks(fd, max_bytes, flush_seconds):
                loader.load_chunk(chunk)
        finally:
            loader.close()
    return loader.summary(opening)


def main(argv: list[str] | None = None) -> int:
    """``target-strata --config FILE``: Singer messages on stdin, states on stdout."""
    parser = argparse.ArgumentParser(prog=NAME, description="Load Singer streams into strata's metadata store.")
    parser.add_argument("--config", type=Path, help="JSON config: store, key_prefix, chunk_bytes, flush_seconds")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        config = json.loads(args.config.read_text(encoding="utf-8")) if args.config else {}
        if not isinstance(config, dict):
            raise UsageError("the config file must hold a JSON object", "check --config")
        for line in run(config, sys.stdin.fileno()):
            sys.stderr.write(f"{NAME}: {line}\n")
    except StrataError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"{NAME}: error: {exc}\n")
        return int(getattr(exc, "exit_code", 1))
    except Exception as exc:  # one line unless --debug, like strata itself
        if args.debug:
            raise
        detail = " ".join(str(exc).split())[:500]
        sys.stderr.write(f"{NAME}: error: {type(exc).__name__}: {detail} (run with --debug for the traceback)\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
