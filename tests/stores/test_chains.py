"""Read-through chains: a dev store that reads what it lacks from prod, writes only to itself.

A read of a feature comes from the first store in the chain holding rows for it; a resolve's
current rows are the first store's own (writes go there, so what it holds stays whole); a chain
with a cycle or with two hash algorithms is refused when it is opened, naming the stores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

import strata as st
from strata.errors import DefinitionError
from tests.stores.test_conformance import graph_of, roots, rows, sync
from tests.stores.test_sync_paths import summary

Make = Callable[..., st.MetadataStore]


@pytest.fixture(params=["memory", "duckdb", "sqlite", "postgres", "clickhouse"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Make:
    """``make(name, **kwargs)``: a store of the parametrised kind.

    DuckDB and SQLite stores are files named after ``name``; PostgreSQL stores schemas of one server.
    """

    def build(name: str, **kwargs: object) -> st.MetadataStore:
        if request.param == "memory":
            return st.InMemoryStore(name=name, **kwargs)  # type: ignore[arg-type]
        if request.param == "postgres":
            uri, schema = request.getfixturevalue("postgres_schema")
            return st.PostgresStore(uri, schema=f"{schema}_{name}", name=name, **kwargs)  # type: ignore[arg-type]
        if request.param == "sqlite":
            return st.SQLiteStore(tmp_path / f"{name}.sqlite", name=name, **kwargs)  # type: ignore[arg-type]
        if request.param == "clickhouse":  # chDB: one directory open at a time; a database per store shares it
            return st.ClickHouseStore(tmp_path / "ch", database=name, name=name, **kwargs)  # type: ignore[arg-type]
        return st.DuckDBStore(tmp_path / f"{name}.duckdb", name=name, **kwargs)  # type: ignore[arg-type]

    return build


def build_prod(prod: st.MetadataStore, n: int = 5) -> None:
    """Prod holds the whole graph, in sync."""
    with prod:
        sync(prod, roots(n))


def test_a_dev_store_resolves_upstreams_that_live_only_in_prod_as_one_store_holding_everything(make: Make) -> None:
    graph = graph_of()
    prod = make("prod", graph=graph)
    build_prod(prod)
    dev = make("dev", graph=graph, fallbacks=[prod])
    alone = st.InMemoryStore(graph=graph)  # one store with prod's upstreams and dev's (empty) embedding
    with alone:
        alone.write("video", roots(5))
        alone.write("transcript", rows(alone.resolve_update("transcript")))
        expected = summary(alone.resolve_update("embedding"))
    with dev:
        assert dev.read("video")["sample_uid"].sort().to_list() == [0, 1, 2, 3, 4]
        inc = dev.resolve_update("embedding")
        assert summary(inc) == expected
        assert summary(inc)[0] == [0, 1, 2, 3, 4]
        dev.write("embedding", rows(inc))
        again = dev.resolve_update("embedding")
        assert summary(again) == ([], {}, [])
    with prod:  # prod changes two samples' audio: dev sees it through the chain, exactly
        sync(prod, roots(5, audio={1: "new", 3: "new"}))
    with alone:
        alone.write("embedding", rows(inc))
        alone.write("video", roots(5, audio={1: "new", 3: "new"}).filter(pl.col("sample_uid").is_in([1, 3])))
        alone.write("transcript", rows(alone.resolve_update("transcript")))
        expected = summary(alone.resolve_update("embedding"))
    with dev:
        changed = dev.resolve_update("embedding")
        assert summary(changed) == expected
        assert sorted(summary(changed)[1]) == [1, 3]


def test_an_empty_table_in_dev_does_not_hide_prods_rows(make: Make) -> None:
    graph = graph_of()
    prod = make("prod", graph=graph)
    build_prod(prod, 3)
    dev = make("dev", graph=graph, fallbacks=[prod])
    with dev:
        dev.write("video", roots(2))
        dev.delete("video", pl.DataFrame({"sample_uid": [0, 1]}), soft=False)  # a table, but no rows
        assert dev.has_feature("video")
        assert dev.read("video")["sample_uid"].sort().to_list() == [0, 1, 2]
        assert summary(dev.resolve_update("transcript"))[0] == [0, 1, 2]


def test_a_write_through_the_chain_changes_only_the_first_store(make: Make, tmp_path: Path) -> None:
    graph = graph_of()
    prod = make("prod", graph=graph)
    build_prod(prod, 3)
    files = sorted(tmp_path.glob("prod.duckdb*"))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    with prod:
        prod_rows = prod.read("video", feature_version="all").to_native().sort("sample_uid", "strata_seq")
    dev = make("dev", graph=graph, fallbacks=[prod])
    with dev:
        dev.write("video", roots(3, audio={0: "dev"}))
        dev.write("transcript", rows(dev.resolve_update("transcript")))
        dev.delete("video", pl.DataFrame({"sample_uid": [2]}))
        assert dev.read("video")["sample_uid"].sort().to_list() == [0, 1]
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == before
    with prod:
        assert prod.read("video", feature_version="all").to_native().sort("sample_uid", "strata_seq").equals(prod_rows)
        assert prod.read("video").to_native().filter(pl.col("sample_uid") == 0)["strata_dv__audio"].to_list() == ["a0"]
    with dev:
        assert dev.read("video").to_native().filter(pl.col("sample_uid") == 0)["strata_dv__audio"].to_list() == ["dev"]


def test_a_cycle_is_refused_when_the_store_is_opened_naming_the_stores(make: Make) -> None:
    graph = graph_of()
    prod = make("prod", graph=graph)
    dev = make("dev", graph=graph, fallbacks=[prod])
    prod.fallbacks = [dev]
    with pytest.raises(DefinitionError) as raised, dev:
        pass
    assert str(raised.value) == (
        "stores `dev` and `prod` fall back on each other in a cycle (dev -> prod -> dev); "
        "a store's fallbacks must not lead back to it"
    )
    assert not dev.is_open
    assert not prod.is_open


def test_a_store_that_falls_back_on_itself_is_refused(make: Make) -> None:
    dev = make("dev", graph=graph_of())
    dev.fallbacks = [dev]
    with pytest.raises(DefinitionError, match=r"dev -> dev"), dev:
        pass


def test_two_hash_algorithms_in_one_chain_are_refused_naming_both(make: Make) -> None:
    graph = graph_of()
    prod = make("prod", graph=graph, hash_algorithm="sha256")
    dev = make("dev", graph=graph, hash_algorithm="md5", fallbacks=[prod])
    with pytest.raises(DefinitionError) as raised, dev:
        pass
    assert str(raised.value) == (
        "store `dev` hashes with `md5` but its fallback `prod` with `sha256`; "
        "give every store of a chain the same hash_algorithm"
    )
    assert not dev.is_open


def test_a_diamond_is_no_cycle(make: Make) -> None:
    graph = graph_of()
    prod = make("prod", graph=graph)
    build_prod(prod, 2)
    staging = make("staging", graph=graph, fallbacks=[prod])
    dev = make("dev", graph=graph, fallbacks=[staging, prod])
    with dev:
        assert dev.read("transcript")["sample_uid"].sort().to_list() == [0, 1]
    assert not prod.is_open


def kept_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Ids, data versions and inputs: what a write takes (the store stamps the rest)."""
    return frame.select([c for c in frame.columns if not c.startswith("strata_") or c.startswith(DATA_COLUMNS)])


DATA_COLUMNS = ("strata_dv__", "strata_in__")
KEYS = ("video", "transcript", "embedding")


@pytest.mark.parametrize("in_dev", [frozenset(k for i, k in enumerate(KEYS) if mask >> i & 1) for mask in range(8)])
def test_any_split_of_the_tables_between_dev_and_prod_resolves_as_one_store_holding_them(
    make: Make, in_dev: frozenset[str]
) -> None:
    graph = graph_of()
    prod = make("prod", graph=graph)
    build_prod(prod, 6)
    scratch = st.InMemoryStore(graph=graph)  # dev's own rows: another history (changed and fewer samples)
    with scratch:
        sync(scratch, roots(5, audio={1: "x"}, frames={2: "y"}))
        ours = {k: kept_columns(scratch.read(k).to_native()) for k in in_dev}
    with prod:
        theirs = {k: kept_columns(prod.read(k).to_native()) for k in KEYS}
    dev = make("dev", graph=graph, fallbacks=[prod])
    with dev:
        for key, frame in ours.items():
            dev.write(key, frame)
        for key in ("transcript", "embedding"):
            plan = dev.plan(key)
            alone = st.InMemoryStore(graph=graph)
            with alone:
                for up in plan.upstreams:
                    name = str(up.key)
                    alone.write(name, ours[name] if name in in_dev else theirs[name])
                if key in in_dev:
                    alone.write(key, ours[key])
                assert summary(dev.resolve_update(key)) == summary(alone.resolve_update(key)), key


def test_lookup_in_a_dev_store_reads_the_sample_through_the_chain(make: Make) -> None:
    graph = graph_of()
    prod = make("prod", graph=graph)
    build_prod(prod, 3)
    dev = make("dev", graph=graph, fallbacks=[prod])
    with dev:
        seen = dev.lookup("transcript", {"sample_uid": 1})
        assert seen["video"]["status"] == "present"
        assert seen["video"]["row"] is not None
        assert seen["video"]["row"]["strata_dv__audio"] == "a1"
        assert seen["transcript"]["status"] == "to add"  # dev holds no transcript: a build computes it there


def test_a_duckdb_store_attaches_a_duckdb_fallback_to_resolve_in_sql(tmp_path: Path) -> None:
    graph = graph_of()
    prod = st.DuckDBStore(tmp_path / "it's prod.duckdb", graph=graph, name="prod")  # a quote in the path
    build_prod(prod, 4)
    memory_prod = st.InMemoryStore(graph=graph, name="prod")
    build_prod(memory_prod, 4)
    for fallback, how in ((prod, "attached"), (memory_prod, "read")):
        dev = st.DuckDBStore(tmp_path / f"dev-{how}.duckdb", graph=graph, name="dev", fallbacks=[fallback])
        with dev:
            dev.write("video", roots(4, audio={2: "dev"}))
            inc = dev.resolve_update("embedding", lazy=True)
            assert inc.meta["chain"] == how
            assert summary(inc.collect()) == ([0, 1, 2, 3], {}, [])
            dev.write("transcript", rows(dev.resolve_update("transcript")))
            assert "chain" not in dev.resolve_update("embedding").meta  # dev holds every upstream now


def test_a_fallback_file_hashed_with_another_algorithm_is_refused_naming_it(tmp_path: Path) -> None:
    graph = graph_of()
    with st.DuckDBStore(tmp_path / "prod.duckdb", graph=graph, hash_algorithm="sha256") as written:
        written.write("video", roots(2))
    prod = st.DuckDBStore(tmp_path / "prod.duckdb", graph=graph, name="prod")  # told md5, like dev
    dev = st.DuckDBStore(tmp_path / "dev.duckdb", graph=graph, name="dev", fallbacks=[prod])
    with pytest.raises(DefinitionError) as raised, dev:
        pass
    assert str(raised.value) == (
        "store `prod` holds data versions hashed with `sha256`, not `md5`; "
        "open it with hash_algorithm='sha256'; algorithms are never mixed"
    )
    assert not dev.is_open
    assert not prod.is_open
    prod.hash_algorithm = "sha256"  # told the truth, each opens again as it was
    assert not prod.read_only
    with prod:
        assert prod.read("video")["sample_uid"].to_list() == [0, 1]


def test_a_fallback_on_the_same_file_is_a_cycle(tmp_path: Path) -> None:
    graph = graph_of()
    again = st.DuckDBStore(tmp_path / "dev.duckdb", graph=graph, name="again")
    dev = st.DuckDBStore(tmp_path / "sub" / ".." / "dev.duckdb", graph=graph, name="dev", fallbacks=[again])
    with pytest.raises(DefinitionError) as raised, dev:
        pass
    assert str(raised.value) == (
        "store `dev` falls back on itself (dev -> again); a store's fallbacks must not lead back to it"
    )
    assert not (tmp_path / "dev.duckdb").exists()


def test_a_sample_looked_up_through_the_chain_has_the_status_the_whole_resolve_gives(make: Make) -> None:
    """A narrowed resolve across a chain reads only the sample's rows; its answer is the full resolve's."""
    from tests.stores.graphs import lineage_graph
    from tests.stores.test_why import children, lineage_store

    prod = make("prod", graph=lineage_graph())
    with prod:
        lineage_store(prod)  # video 1, 2 -> frames 0..2 each -> summary, in sync
        prod.write("video", pl.DataFrame({"sample_uid": [3], "strata_dv__frames": ["v3"]}))
    dev = make("dev", graph=lineage_graph(), fallbacks=[prod])
    with dev:
        dev.write("summary", dev.resolve_update("summary").added.to_native())  # summary 1, 2 of prod's frames
    with prod:  # frame 1 of video 2 changes in prod
        parent = prod.read("frames").to_native().filter(pl.col("sample_uid") == 2)
        parent = parent.select("sample_uid", "strata_in__video__frames").unique()
        changed = pl.when(pl.col("frame") == 1).then(pl.lit("p2-1-new")).otherwise(pl.col("strata_dv__pixels"))
        prod.write("frames", children(parent, [0, 1, 2]).with_columns(changed.alias("strata_dv__pixels")))
    frames = [{"sample_uid": s, "frame": f} for s in (1, 2, 3) for f in (0, 1, 5)]
    summaries = [{"sample_uid": s} for s in (1, 2, 3, 4)]
    with dev:
        assert_lookups_agree(dev, "frames", frames)  # video in prod, no frames in dev
        assert_lookups_agree(dev, "summary", summaries)  # frames in prod, summary 1, 2 in dev
        inc = dev.resolve_update("frames").added.to_native()
        dev.write("frames", children(inc.filter(pl.col("sample_uid") == 3), [0, 5]))
        assert_lookups_agree(dev, "frames", frames)  # video in prod, frames of 3 in dev


def assert_lookups_agree(store: st.MetadataStore, key: str, samples: list[dict[str, int]]) -> None:
    """Each sample's status from ``lookup`` (a resolve narrowed to it) is what the whole resolve says of it."""
    whole = store.resolve_update(key).collect()
    parts = {p: whole_ids(getattr(whole, p)) for p in ("added", "changed", "removed")}
    assert any(parts.values()), "nothing to compare"
    held = whole_ids(store.read(key))
    for ids in samples:
        parent = ids["sample_uid"]
        here = (tuple(ids.values()) if len(ids) > 1 else parent) in held
        expected = "to add" if parent in parts["added"] else "stale" if parent in parts["changed"] else None
        expected = expected or ("up to date" if here else "missing")
        if here and parent in parts["removed"]:
            expected = "to remove"
        assert store.lookup(key, ids)[key]["status"] == expected, (key, ids, parts)


def whole_ids(frame: object) -> set[object]:
    """The samples of a read or an increment part: resolve ids (``sample_uid``), or whole id tuples for a read."""
    native = frame.to_native() if hasattr(frame, "to_native") else frame
    assert isinstance(native, pl.DataFrame)
    ids = [c for c in ("sample_uid", "frame") if c in native.columns]
    return {r[0] if len(ids) == 1 else tuple(r) for r in native.select(ids).rows()}
