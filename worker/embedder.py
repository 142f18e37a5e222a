"""Text embeddings for task memory: a local hashed embedder (the default) or an HTTP endpoint.

`HashedEmbedder` needs no network and no model: it hashes words, word pairs and character
n-grams into 256 signed buckets. It knows no synonyms, but tasks of one repository share
their vocabulary (file names, identifiers, error words), which is what it matches on.
`HttpEmbedder` calls any OpenAI-compatible `/embeddings` endpoint for semantic embeddings.
Memories remember which embedder made them; recall compares only vectors of the same one.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Any, Protocol

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DIMENSIONS = 256  # agent_memory.embedding is vector(256)


class EmbedderError(Exception):
    """The embeddings endpoint failed or answered something unusable."""


class Embedder(Protocol):
    name: str  # stored with each memory; recall compares only vectors of the same name
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class EmbedderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMORY_", env_file=".env", extra="ignore")

    embeddings_url: str | None = None  # e.g. https://api.openai.com/v1; unset: HashedEmbedder
    embeddings_model: str = "text-embedding-3-small"
    embeddings_api_key: SecretStr | None = None
    embeddings_timeout_seconds: float = Field(default=20, gt=0)
    recall_k: int = Field(default=5, ge=0, le=50)  # memories shown before a task
    # Memories less similar than this are not worth showing. With HashedEmbedder, unrelated
    # tasks of one repository score about 0.0-0.15, related ones 0.2 and up.
    recall_min_similarity: float = Field(default=0.15, ge=-1, le=1)


def make_embedder(settings: EmbedderSettings) -> Embedder:
    if settings.embeddings_url is None:
        return HashedEmbedder()
    return HttpEmbedder(
        settings.embeddings_url,
        model=settings.embeddings_model,
        api_key=settings.embeddings_api_key,
        timeout_seconds=settings.embeddings_timeout_seconds,
    )


# --- HashedEmbedder ------------------------------------------------------------------------

# Identifiers and words; file paths and punctuation split into their parts.
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_]*|[0-9]+")
# The parts of an identifier: snake_case, camelCase, HTTPServer, version2 → words.
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "do", "does", "for",
    "from", "has", "have", "i", "if", "in", "into", "is", "it", "its", "must", "no", "not", "of",
    "on", "or", "our", "should", "so", "that", "the", "their", "then", "there", "these", "this",
    "to", "was", "we", "were", "when", "which", "while", "will", "with", "would", "you",
})  # fmt: skip
# Each group is normalised on its own, then weighted: whole words count most, character
# n-grams catch inflections and compounds (login/logins/loginPage), word pairs phrases.
_WORD_WEIGHT = 1.0
_PAIR_WEIGHT = 0.5
_CHAR_WEIGHT = 0.7
_CHAR_SIZES = (3, 4, 5)


def words(text: str) -> list[str]:
    """Lower-cased words of `text`, without stop words; an identifier gives itself and its
    parts ("getUserName" → getusername, get, user, name)."""
    out: list[str] = []
    for token in _TOKEN.findall(text):
        parts = [p.lower() for piece in token.split("_") for p in _PART.findall(piece)]
        whole = token.lower()
        if len(parts) > 1:
            out.append(whole)
            out.extend(p for p in parts if p not in _STOP_WORDS)
        elif whole not in _STOP_WORDS:
            out.append(whole)
    return out


@lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dimensions: int) -> tuple[int, float]:
    """A stable (index, sign) for a feature: blake2b, the same in every process."""
    value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
    return value % dimensions, (1.0 if value >> 63 else -1.0)


def _group(features: Iterable[str], dimensions: int) -> list[float]:
    """Signed feature hashing with sublinear tf (1 + ln tf), L2-normalised."""
    vector = [0.0] * dimensions
    for feature, count in Counter(features).items():
        index, sign = _bucket(feature, dimensions)
        vector[index] += sign * (1.0 + math.log(count))
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


def _char_ngrams(word_list: Sequence[str]) -> Iterable[str]:
    for word in word_list:
        marked = f"<{word}>"
        for size in _CHAR_SIZES:
            for start in range(len(marked) - size + 1):
                yield "c:" + marked[start : start + size]


class HashedEmbedder:
    """Local and deterministic: the same text gives the same vector on every machine."""

    name = "hashed-v1"  # change when the features change: old vectors become incomparable

    def __init__(self, dimensions: int = DIMENSIONS) -> None:
        self.dimensions = dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]

    def embed_one(self, text: str) -> list[float]:
        word_list = words(text)
        if not word_list:
            # No features: a fixed unit vector rather than zeros (cosine of zeros is NaN).
            return _group(["<empty>"], self.dimensions)
        groups = (
            (_WORD_WEIGHT, _group(("w:" + w for w in word_list), self.dimensions)),
            (_PAIR_WEIGHT, _group((f"b:{a} {b}" for a, b in pairwise(word_list)),
                                  self.dimensions)),
            (_CHAR_WEIGHT, _group(_char_ngrams(word_list), self.dimensions)),
        )  # fmt: skip
        vector = [0.0] * self.dimensions
        for weight, group in groups:
            for index, value in enumerate(group):
                vector[index] += weight * value
        norm = math.sqrt(sum(v * v for v in vector))
        return [v / norm for v in vector]


# --- HttpEmbedder --------------------------------------------------------------------------


class HttpEmbedder:
    """An OpenAI-compatible endpoint: POST {base_url}/embeddings, asking for 256 dimensions."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: SecretStr | None = None,
        timeout_seconds: float = 20,
        dimensions: int = DIMENSIONS,
    ) -> None:
        self.name = f"http:{model}"
        self.dimensions = dimensions
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._api_key = api_key
        self._timeout = timeout_seconds

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        headers = {}
        if self._api_key is not None:
            headers["Authorization"] = "Bearer " + self._api_key.get_secret_value()
        body = {"model": self._model, "input": list(texts), "dimensions": self.dimensions}
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(self._url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise EmbedderError(f"embeddings endpoint {self._url} timed out") from exc
        except httpx.HTTPError as exc:
            raise EmbedderError(f"embeddings endpoint {self._url} unreachable: {exc}") from exc
        if response.status_code != httpx.codes.OK:
            raise EmbedderError(
                f"embeddings endpoint {self._url} answered HTTP {response.status_code}: "
                + response.text[:200]
            )
        try:
            data = response.json()["data"]
            vectors = _vectors(data, len(texts))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmbedderError(f"embeddings endpoint {self._url}: unusable answer") from exc
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise EmbedderError(
                    f"embeddings endpoint {self._url} returned {len(vector)}-dimensional "
                    f"vectors, expected {self.dimensions} (does model {self._model!r} support "
                    "the `dimensions` parameter?)"
                )
        return vectors


def _vectors(data: Any, expected: int) -> list[list[float]]:
    """The vectors of an OpenAI-style `data` list, in input order (by `index` when given)."""
    if not isinstance(data, list) or len(data) != expected:
        raise ValueError("wrong number of embeddings")
    items = sorted(data, key=lambda item: item.get("index", 0)) if data else []
    return [[float(v) for v in item["embedding"]] for item in items]
