"""The reference graph: video(audio, frames) -> transcript(text <- audio) -> embedding(vector <- text, frames).

Each downstream feature has a ``compute`` that makes its values for a batch: it takes a Polars
frame with the id columns and the upstream columns it reads, and returns the id columns and
its own columns. The "models" are tiny and pure, so the example runs anywhere in a second;
Polars is imported inside ``compute`` so that listing the features loads no dataframe library.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import strata as st

if TYPE_CHECKING:
    import polars as pl

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIMENSIONS = 4


class Video(
    st.Feature,
    spec=st.FeatureSpec(
        "video",
        id_columns=["sample_uid"],
        fields=[st.FieldSpec("audio", code_version="1"), st.FieldSpec("frames", code_version="1")],
    ),
):
    """Raw videos: an audio track (a string of digits here) and a list of frame brightnesses."""


class Transcript(
    st.Feature,
    spec=st.FeatureSpec(
        "transcript",
        deps=[Video],
        fields=[st.FieldSpec("text", code_version="1", deps=[st.FieldDep(Video, ["audio"])])],
    ),
):
    """What is said in the video: its audio, spoken out digit by digit."""

    def compute(self, inputs: pl.DataFrame) -> pl.DataFrame:
        """``audio`` -> ``text``."""
        import polars as pl

        return inputs.select(
            "sample_uid",
            pl.col("audio").map_elements(transcribe, return_dtype=pl.String).alias("text"),
        )


class Embedding(
    st.Feature,
    spec=st.FeatureSpec(
        "embedding",
        deps=[Transcript, Video],
        fields=[
            st.FieldSpec(
                "vector",
                code_version="1",
                deps=[st.FieldDep(Transcript, ["text"]), st.FieldDep(Video, ["frames"])],
            )
        ],
    ),
):
    """A small vector per video, from its transcript and its frames."""

    def compute(self, inputs: pl.DataFrame) -> pl.DataFrame:
        """``text`` and ``frames`` -> ``vector``."""
        import polars as pl

        vectors = [embed(text, frames) for text, frames in zip(inputs["text"], inputs["frames"], strict=True)]
        return inputs.select("sample_uid").with_columns(
            pl.Series("vector", vectors, dtype=pl.Array(pl.Float64, DIMENSIONS))
        )


def transcribe(audio: str) -> str:
    """The "speech recognition" of this example: each digit as a word."""
    return " ".join(WORDS[int(c)] for c in audio if c.isdigit())


def embed(text: str, frames: list[int]) -> list[float]:
    """A deterministic unit-ish vector from the text's hash and the mean frame brightness."""
    digest = hashlib.sha256(text.encode()).digest()
    brightness = sum(frames) / (255 * len(frames)) if len(frames) else 0.0
    return [round(digest[i] / 255 * 0.5 + brightness * 0.5, 6) for i in range(DIMENSIONS)]
