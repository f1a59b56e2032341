"""Write ``old_layout/``: a store file in the layout before tables were split, and what strata read from it.

Run from the repository root with strata at main 2f209ec on the path (e.g. ``git archive 2f209ec src``):

    PYTHONPATH=<that src> .venv/bin/python tests/stores/data/make_old_layout.py

``store.duckdb.gz``: the store after ``before_split``; ``expected/*.parquet``: that strata's reads of
it (``before.*``), then the increments of ``a_round`` on a copy and its reads after it (``after.*``).
"""

from __future__ import annotations

import gzip
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[3]))

import strata as st
from tests.stores.test_conformance import graph_of
from tests.stores.test_duckdb_layout import OLD_LAYOUT, a_round, before_split, everything, newest


def main() -> None:
    expected = OLD_LAYOUT / "expected"
    shutil.rmtree(OLD_LAYOUT, ignore_errors=True)
    expected.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as work:
        path, copy = Path(work) / "store.duckdb", Path(work) / "copy.duckdb"
        with st.DuckDBStore(path, graph=graph_of()) as store:
            before_split(store)
            frames = {f"before.{name}": frame for name, frame in everything(store).items()}
        with gzip.open(OLD_LAYOUT / "store.duckdb.gz", "wb") as packed:
            packed.write(path.read_bytes())
        shutil.copy(path, copy)
        until = newest(frames)
        frames |= {f"after.{name}": frame for name, frame in a_round(copy).items()}
        with st.DuckDBStore(copy, graph=graph_of(text_cv="2"), read_only=True) as store:
            frames |= {f"after.{name}": frame for name, frame in everything(store, until).items()}
    for name, frame in frames.items():
        frame.write_parquet(expected / f"{name}.parquet")


if __name__ == "__main__":
    main()
