"""Every store gives byte-identical data versions and increments on the same data.

Each store of ``STORES`` walks the same scenario as a DuckDB store (the reference: the canonical
text of a value is DuckDB's ``CAST(x AS VARCHAR)``, docs/stores.md) and must give the same
increments, the same data versions and the same provenance, whatever the dtype of the ids.
"""

from __future__ import annotations

import datetime as dt
import decimal
import time
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import strata as st
from strata.features.versions import digest_hex, sample_hash
from tests.stores.conftest import StoreFactory

PARIS = "Europe/Paris"


def _naive(*values: dt.datetime) -> pl.Series:
    return pl.Series(values, dtype=pl.Datetime("us"))


IDS: dict[str, tuple[pl.Series, pl.Series]] = {
    "int": (pl.Series([1, 2], dtype=pl.Int64), pl.Series([0, 7, -3], dtype=pl.Int64)),
    "string": (pl.Series(["a", 'it\'s "b"']), pl.Series(["x", "y z;--", "ü"])),
    "date": (
        pl.Series([dt.date(2024, 1, 1), dt.date(1999, 12, 31)]),
        pl.Series([dt.date(2024, 2, 29), dt.date(1, 1, 1), dt.date(2024, 3, 1)]),
    ),
    "datetime": (
        _naive(dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 1, 1, 12, 0, 0, 5)),  # noqa: DTZ001 - naive ids
        _naive(
            dt.datetime(2024, 1, 1, 12),  # noqa: DTZ001 - naive ids
            dt.datetime(2024, 1, 1, 12, 0, 0, 500000),  # noqa: DTZ001 - naive ids
            dt.datetime(2024, 1, 1, 12, 0, 0, 123456),  # noqa: DTZ001 - naive ids
        ),
    ),
    "zoned datetime": (
        _naive(dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 6, 1, 12, 0, 0, 5)).dt.replace_time_zone(PARIS),  # noqa: DTZ001
        _naive(
            dt.datetime(2024, 1, 1, 12),  # noqa: DTZ001 - zoned below
            dt.datetime(2024, 7, 1, 23, 30, 0, 250000),  # noqa: DTZ001 - zoned below
            dt.datetime(2024, 3, 31, 3),  # noqa: DTZ001 - zoned below
        ).dt.replace_time_zone(PARIS),
    ),
    "float": (pl.Series([1e-7, 1e20]), pl.Series([1e-7, 1e20, 0.1, -2.0, 1e16, 1e15, 1e-5])),
    "float32": (
        pl.Series([0.5, 2.0], dtype=pl.Float32),
        pl.Series([1e-7, 1e20, 0.1, 1173392.25, -34219448.0], dtype=pl.Float32),
    ),
    "bool": (pl.Series([True, False]), pl.Series([True, False])),
    "decimal": (
        pl.Series([decimal.Decimal("1.50"), decimal.Decimal("-2.25")], dtype=pl.Decimal(10, 2)),
        pl.Series([decimal.Decimal("0.10"), decimal.Decimal("100.00")], dtype=pl.Decimal(10, 2)),
    ),
    "time": (
        pl.Series([dt.time(12), dt.time(1, 2, 3, 4)]),
        pl.Series([dt.time(0), dt.time(23, 59, 59, 500000), dt.time(1, 2, 3, 4)]),
    ),
}
"""Per dtype: the values of the root's second id (two) and of an expansion's child id (several)."""


def lineage_graph() -> st.FeatureGraph:
    """video -> transcript; video -> frames (expansion) -> summary (aggregation); embedding on three deps.

    Every feature is keyed by ``sample_uid`` and ``k`` (the dtype under test); frames add ``frame``.
    """
    ids = ("sample_uid", "k")
    on = st.FieldSpec
    graph = st.FeatureGraph()
    with graph.use():
        for spec in (
            st.FeatureSpec("video", id_columns=ids, fields=["audio", "frames"]),
            st.FeatureSpec(
                "transcript",
                id_columns=ids,
                deps=["video"],
                fields=[on("text", "1", [st.FieldDep("video", ["audio"])])],
            ),
            st.FeatureSpec(
                "frames",
                id_columns=(*ids, "frame"),
                deps=[st.FeatureDep("video", st.Lineage.expansion(list(ids)))],
                fields=[on("pixels", "1", [st.FieldDep("video", ["frames"])])],
            ),
            st.FeatureSpec(
                "summary",
                id_columns=ids,
                deps=[st.FeatureDep("frames", st.Lineage.aggregation(list(ids)))],
                fields=["mean"],
            ),
            st.FeatureSpec(
                "embedding",
                id_columns=ids,
                deps=["transcript", "video", "summary"],
                fields=[
                    on("mix", "1", [st.FieldDep("transcript", ["text"])]),
                    on("vector", "1", [st.FieldDep("video", ["frames"]), st.FieldDep("summary", ["mean"])]),
                ],
            ),
        ):
            graph.add_spec(spec)
    return graph


DOWNSTREAM = ("transcript", "frames", "summary", "embedding")
PROVENANCE = ("strata_dv__", "strata_cv__", "strata_in__", "strata_feature_version", "strata_snapshot_version")


def canonical(frame: pl.DataFrame) -> dict[str, Any]:
    """A frame as comparable data: its schema and its rows, sorted (zoned datetimes compared as instants in UTC).

    The time zone a zoned id reads back in is the store's presentation (DuckDB gives its session's);
    its instant, and every version derived from it, must agree.
    """
    utc = [
        pl.col(c).dt.convert_time_zone("UTC")
        for c, t in frame.schema.items()
        if isinstance(t, pl.Datetime) and t.time_zone
    ]
    frame = frame.with_columns(utc)
    return {"schema": dict(frame.schema), "rows": sorted(frame.to_dicts(), key=repr)}


class Walk:
    """One store walked through builds, partial changes, deletions (soft and hard) and a child removed."""

    def __init__(self, store: st.MetadataStore, parents: pl.Series, children: pl.Series) -> None:
        self.store, self.parents, self.children = store, parents.alias("k"), children.alias("frame")
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def roots(self, audio: dict[int, str] | None = None, frames: dict[int, str] | None = None) -> pl.DataFrame:
        """Four samples: ``sample_uid`` 1, 2 crossed with the two ``k`` values."""
        grid = pl.DataFrame({"sample_uid": [1, 2]}).join(pl.DataFrame([self.parents]), how="cross")
        audio, frames = audio or {}, frames or {}
        return grid.with_columns(
            strata_dv__audio=pl.Series([audio.get(i, f"a{i}") for i in range(len(grid))]),
            strata_dv__frames=pl.Series([frames.get(i, f"f{i}") for i in range(len(grid))]),
        )

    def note(self, key: str, inc: st.Increment) -> st.Increment:
        self.seen.append((key, {p: canonical(getattr(inc, p).to_native()) for p in ("added", "changed", "removed")}))
        return inc

    def build(self) -> None:
        """Resolve every downstream feature in order and write (or delete) what its increment asks for."""
        for key in DOWNSTREAM:
            inc = self.note(key, self.store.resolve_update(key))
            new = pl.concat(
                [inc.added.to_native(), inc.changed.to_native().select(inc.added.to_native().columns)], how="vertical"
            )
            if key == "frames":
                new = new.join(pl.DataFrame([self.children]), how="cross")
            if len(new):
                self.store.write(key, new)
            if len(inc.removed):
                self.store.delete(key, inc.removed.to_native(), soft=key != "frames")

    def run(self) -> None:
        store = self.store
        self.note("video", store.resolve_update("video", samples=self.roots()))
        store.write("video", self.roots())
        self.build()
        changed = self.roots(audio={0: "x"}, frames={1: "y"})  # one sample's audio, another's frames
        self.note("video", store.resolve_update("video", samples=changed))
        store.write_changed("video", changed)
        self.build()
        first, second, third = (changed.slice(i, 1).select("sample_uid", "k") for i in (1, 2, 3))
        store.delete("video", first)  # soft: a tombstone
        store.delete("video", second, soft=False)  # hard: erased
        gone = pl.DataFrame([pl.Series("frame", [self.children[0]], self.children.dtype)])
        store.delete("frames", third.join(gone, how="cross"), soft=False)  # one child of a live sample
        self.build()

    def stored(self) -> dict[str, Any]:
        """Every feature's rows, tombstones included, as ids and provenance columns."""
        out = {}
        for key in ("video", *DOWNSTREAM):
            frame = self.store.read(key, include_deleted=True).to_native()
            keep = [c for c in frame.columns if c in ("sample_uid", "k", "frame", "strata_deleted")]
            keep += sorted(c for c in frame.columns if c.startswith(PROVENANCE))
            out[key] = canonical(frame.select(keep))
        return out


def walk(store: st.MetadataStore, dtype: str) -> Walk:
    parents, children = IDS[dtype]
    with store:
        done = Walk(store, parents, children)
        done.run()
        done.seen.append(("stored", done.stored()))
    return done


@pytest.mark.parametrize("dtype", list(IDS))
def test_every_store_gives_duckdbs_increments_and_versions_for_ids_of_every_dtype(
    store_factory: StoreFactory, dtype: str
) -> None:
    reference = walk(st.DuckDBStore(graph=lineage_graph()), dtype).seen
    mine = walk(store_factory(graph=lineage_graph()), dtype).seen
    assert [k for k, _ in mine] == [k for k, _ in reference]
    for (key, got), (_, want) in zip(mine, reference, strict=True):
        assert got == want, key
    parts = [inc for key, inc in reference if key in ("transcript", "embedding")]
    assert any(p["changed"]["rows"] for p in parts)  # the walk did change something partially
    assert any(p["removed"]["rows"] for p in parts)


CANONICAL_TEXT: dict[str, tuple[pl.Series, list[str]]] = {
    "int": (pl.Series([-3, 0, 7]), ["-3", "0", "7"]),
    "float": (
        pl.Series([1e-7, 1e-5, 0.0001, 0.1, 2.0, 1e15, 1e16, 1e20, float("inf"), float("-inf"), 1e100, 5e-324]),
        [
            "1e-07",
            "1e-05",
            "0.0001",
            "0.1",
            "2.0",
            "1000000000000000.0",
            "1e+16",
            "1e+20",
            "inf",
            "-inf",
            "1e+100",
            "5e-324",
        ],
    ),
    "float32": (
        pl.Series([1e-7, 0.1, 1173392.25, -34219448.0, 1e20, -705937280.0], dtype=pl.Float32),
        ["1e-07", "0.1", "1173392.25", "-34219448.0", "1e+20", "-705937300.0"],
    ),
    "bool": (pl.Series([False, True]), ["false", "true"]),
    "date": (
        pl.Series([dt.date(1, 1, 1), dt.date(2024, 2, 29), dt.date(1899, 12, 31), dt.date(9999, 12, 31)]),
        ["0001-01-01", "2024-02-29", "1899-12-31", "9999-12-31"],
    ),
    "datetime": (
        _naive(
            dt.datetime(2024, 1, 1, 12),  # noqa: DTZ001 - naive ids
            dt.datetime(2024, 1, 1, 12, 0, 0, 5),  # noqa: DTZ001 - naive ids
            dt.datetime(2024, 1, 1, 12, 0, 0, 500000),  # noqa: DTZ001 - naive ids
            dt.datetime(1, 1, 1),  # noqa: DTZ001 - naive ids
            dt.datetime(1969, 12, 31, 23, 59, 59, 999999),  # noqa: DTZ001 - naive ids
            dt.datetime(9999, 12, 31, 23, 59, 59),  # noqa: DTZ001 - naive ids
        ),
        [
            "2024-01-01 12:00:00",
            "2024-01-01 12:00:00.000005",
            "2024-01-01 12:00:00.5",
            "0001-01-01 00:00:00",
            "1969-12-31 23:59:59.999999",
            "9999-12-31 23:59:59",
        ],
    ),
    "zoned datetime": (
        _naive(dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 6, 1, 12, 0, 0, 5)).dt.replace_time_zone(PARIS),  # noqa: DTZ001
        ["2024-01-01 11:00:00+00", "2024-06-01 10:00:00.000005+00"],
    ),
    "time": (
        pl.Series([dt.time(0), dt.time(1, 2, 3, 4), dt.time(12, 0, 0, 500000)]),
        ["00:00:00", "01:02:03.000004", "12:00:00.5"],
    ),
    "decimal": (
        pl.Series([decimal.Decimal("-2.25"), decimal.Decimal("1.50")], dtype=pl.Decimal(10, 2)),
        ["-2.25", "1.50"],
    ),
    "string": (pl.Series(["a", "é'\""]), ["a", "é'\""]),
}
"""Per dtype: child ids and the canonical text of each (docs/stores.md)."""


def aggregation_graph(suffix: str = "") -> st.FeatureGraph:
    """``frames<suffix>`` (ids ``sample_uid``, ``frame``) aggregated onto ``summary<suffix>``."""
    graph = st.FeatureGraph()
    with graph.use():
        graph.add_spec(st.FeatureSpec(f"frames{suffix}", id_columns=["sample_uid", "frame"], fields=["f"]))
        by_sample = st.Lineage.aggregation(["sample_uid"])
        graph.add_spec(
            st.FeatureSpec(f"summary{suffix}", deps=[st.FeatureDep(f"frames{suffix}", by_sample)], fields=["g"])
        )
    return graph


def folded(texts: list[str], dv: str) -> str:
    """The data version of ``summary.g`` over children of these canonical texts, each of data version ``dv``."""
    rows = "".join(f"{len(t.encode())}:{t}{len(dv.encode())}:{dv}" for t in texts)
    return sample_hash("md5", ["g", "1", "frames.f", digest_hex("md5", rows)])


@pytest.mark.parametrize("dtype", list(CANONICAL_TEXT))
def test_an_aggregation_folds_in_the_canonical_text_of_its_ids(store_factory: StoreFactory, dtype: str) -> None:
    """The documented text of every dtype, pinned: a store that writes ``1e-7`` or ``12:00:00.000000`` fails."""
    values, texts = CANONICAL_TEXT[dtype]
    texts = [texts[i] for i in values.arg_sort().to_list()]  # the order an aggregation folds its rows in
    frames = pl.DataFrame([pl.Series("sample_uid", [1] * len(values)), values.alias("frame")])
    with store_factory(graph=aggregation_graph()) as store:
        store.write("frames", frames.with_columns(strata_dv__f=pl.lit("v")))
        added = store.resolve_update("summary").added.to_native()
    assert added["strata_dv__g"].to_list() == [folded(texts, "v")]


def _no_negative_zero(value: float) -> float:
    """A SQLite store keeps ``-0.0`` as ``0.0`` (docs/stores.md): an equal id, but DuckDB writes ``-0.0``."""
    return value + 0.0


RANDOM_IDS: dict[str, tuple[pl.DataType, hs.SearchStrategy[Any]]] = {
    "-double": (pl.Float64(), hs.floats(allow_nan=False).map(_no_negative_zero)),
    "-single": (pl.Float32(), hs.floats(width=32, allow_nan=False).map(_no_negative_zero)),
    "-datetime": (pl.Datetime("us"), hs.datetimes()),
    "-zoned": (pl.Datetime("us", PARIS), hs.datetimes(timezones=hs.just(dt.UTC))),
}


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is New York's while the test runs."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_zoned_ids_fold_in_at_utc_whatever_the_machines_time_zone(store_factory: StoreFactory) -> None:
    """DuckDB writes a zoned datetime in its session's zone, the machine's unless told: a store keeps UTC."""
    values, texts = CANONICAL_TEXT["zoned datetime"]
    frames = pl.DataFrame([pl.Series("sample_uid", [1] * len(values)), values.alias("frame")])
    with store_factory(graph=aggregation_graph()) as store:
        store.write("frames", frames.with_columns(strata_dv__f=pl.lit("v")))
        added = store.resolve_update("summary").added.to_native()
    assert added["strata_dv__g"].to_list() == [folded(texts, "v")]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=hs.data())
def test_random_float_and_datetime_ids_fold_in_as_duckdb_writes_them(store_factory: StoreFactory, data: Any) -> None:
    """Random child ids (doubles, singles, datetimes): one store per kind, a new parent per example."""
    kind = data.draw(hs.sampled_from(sorted(RANDOM_IDS)))
    dtype, values = RANDOM_IDS[kind]
    ids = pl.Series("frame", data.draw(hs.lists(values, min_size=1, max_size=4, unique=True)), dtype=dtype)
    frames = pl.DataFrame([pl.Series("sample_uid", [1] * len(ids)), ids]).with_columns(strata_dv__f=pl.lit("v"))
    answers = []
    for store in (st.DuckDBStore(graph=aggregation_graph(kind)), store_factory(graph=aggregation_graph(kind))):
        with store:
            store.write(f"frames{kind}", frames)
            answers.append(store.resolve_update(f"summary{kind}").added.to_native()["strata_dv__g"].to_list())
            store.delete(f"frames{kind}", frames.select("sample_uid", "frame"), soft=False)
    assert answers[0] == answers[1]


def test_a_nan_id_is_folded_in_as_nan_or_refused_in_one_line_with_nothing_written(store_factory: StoreFactory) -> None:
    frames = pl.DataFrame({"sample_uid": [1, 1], "frame": [1.5, float("nan")], "strata_dv__f": ["v", "v"]})
    with store_factory(graph=aggregation_graph()) as store:
        try:
            store.write("frames", frames)
        except st.StrataError as refused:
            message = str(refused)
            assert "NaN" in message
            assert type(store).__name__.removesuffix("Store").lower() in message.lower()
            assert "\n" not in message
            assert store.read("frames") is None or len(store.read("frames")) == 0
            return
        added = store.resolve_update("summary").added.to_native()
    assert added["strata_dv__g"].to_list() == [folded(["1.5", "nan"], "v")]


@pytest.mark.parametrize("dtype", [pl.Time(), pl.Datetime("ns")], ids=str)
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_time_finer_than_a_microsecond_is_refused_by_the_sql_stores_in_one_line_with_nothing_written(
    kind: str, dtype: pl.DataType, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """SQLite and PostgreSQL keep times to the microsecond, DuckDB to the nanosecond: its text would differ."""
    graph = aggregation_graph()
    if kind == "postgres":
        uri, schema = request.getfixturevalue("postgres_schema")
        store: st.MetadataStore = st.PostgresStore(uri, schema=schema, graph=graph)
    else:
        store = st.SQLiteStore(tmp_path / "meta.sqlite", graph=graph)

    def frames(nanoseconds: int) -> pl.DataFrame:
        ids = pl.Series("frame", [nanoseconds, 3_000], pl.Int64).cast(dtype)
        return pl.DataFrame([pl.Series("sample_uid", [1, 1]), ids]).with_columns(strata_dv__f=pl.lit("v"))

    with store:
        store.write("frames", frames(2_000))  # whole microseconds: kept
        with pytest.raises(st.StrataError) as refused:
            store.write("frames", frames(1_500))
        message = str(refused.value)
        assert "`frame`" in message
        assert ("SQLite" if kind == "sqlite" else "PostgreSQL") in message
        assert "\n" not in message
        assert store.read("frames").to_native()["frame"].to_list() == frames(2_000)["frame"].to_list()
