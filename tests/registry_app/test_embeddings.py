"""Embedding providers: the real MiniLM model, and the OpenAI provider against a fake API on 127.0.0.1."""

import threading

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from registry_app import embeddings
from registry_app.embeddings import EmbeddingError, MiniLMProvider, OpenAIProvider, embed_queries, get_provider
from tests.fakes.openai import FakeOpenAI


@pytest.fixture(scope="module")
def minilm() -> MiniLMProvider:
    return MiniLMProvider(threads=2)


def test_minilm_vectors_are_normalised_float32_and_deterministic(minilm):
    texts = ["send a message to a Slack channel", "read my Gmail inbox", ""]
    first = minilm.embed(texts)
    second = minilm.embed(list(texts))
    assert first.shape == (3, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, second)
    # batching and ordering do not change a text's vector
    alone = minilm.embed([texts[1]])
    np.testing.assert_allclose(alone[0], first[1], atol=1e-5)


def test_minilm_texts_of_very_different_lengths_batch_apart_with_the_same_vectors(minilm):
    # A long request and its short clauses: run in batches of similar length (padding is cut to each batch's
    # longest), every vector equals the text's vector embedded alone.
    texts = ["weather " * 300, "post to slack", "read my gmail inbox and label the invoices", "", "notion " * 40]
    batched = minilm.embed(texts)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(batched[i], minilm.embed([text])[0], atol=1e-5)
    assert embeddings._length_batches([256, 5, 6, 40, 7, 250], size=2) == [[1, 2], [4], [3], [5, 0]]


def test_minilm_similarity_follows_meaning(minilm):
    query, near, far = minilm.embed(
        ["post a message in a Slack channel", "Slack integration: send messages and read channels", "bake sourdough bread"]
    )
    assert float(query @ near) > 0.6
    assert float(query @ near) > float(query @ far) + 0.3


def test_minilm_truncates_long_texts_at_256_tokens(minilm):
    head = "weather forecast for cities around the world " * 60  # well over 256 tokens
    long_a, long_b = minilm.embed([head + "slack messages " * 50, head + "stock prices " * 50])
    np.testing.assert_allclose(long_a, long_b, atol=1e-5)  # the tails differ, but lie past the 256th token


def test_minilm_first_load_is_thread_safe():
    provider = MiniLMProvider(threads=1)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work():
        try:
            results.append(provider.embed(["query the postgres database"]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for vector in results[1:]:
        np.testing.assert_allclose(vector, results[0], atol=1e-6)


def test_minilm_refuses_a_model_file_with_another_checksum(monkeypatch):
    monkeypatch.setattr(embeddings, "MINILM_SHA256", "0" * 64)
    with pytest.raises(ImproperlyConfigured, match="sha256"):
        MiniLMProvider().embed(["x"])


def test_get_provider_follows_settings(settings):
    settings.EMBEDDING_PROVIDER = "minilm"
    assert get_provider() is get_provider()  # one model per process
    assert get_provider().name == "all-MiniLM-L6-v2-int8" and get_provider().dims == 384

    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test"
    settings.EMBEDDING_MODEL = "text-embedding-3-small"
    settings.EMBEDDING_DIMS = 0
    provider = get_provider()
    assert isinstance(provider, OpenAIProvider)
    assert (provider.name, provider.dims) == ("openai/text-embedding-3-small", 1536)

    settings.OPENAI_API_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="OPENAI_API_KEY"):
        get_provider()
    settings.EMBEDDING_PROVIDER = "word2vec"
    with pytest.raises(ImproperlyConfigured, match="EMBEDDING_PROVIDER"):
        get_provider()


def test_openai_provider_batches_and_orders_by_index():
    with FakeOpenAI() as fake:
        provider = OpenAIProvider(api_key="sk-test", base_url=fake.base_url, batch_size=2, backoff_seconds=0)
        texts = ["send slack message", "read gmail", "create notion page", "slack channel history", ""]
        vectors = provider.embed(texts)
    assert vectors.shape == (5, 1536) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert [len(r["input"]) for r in fake.requests] == [2, 2, 1]
    assert all(r["model"] == "text-embedding-3-small" and r["encoding_format"] == "float" for r in fake.requests)
    assert fake.requests[2]["input"] == [" "]  # the API refuses empty strings
    # the fake answers in reverse order; the provider must sort by index (shared words -> closer vectors)
    assert float(vectors[0] @ vectors[3]) > float(vectors[0] @ vectors[1])


def test_openai_provider_retries_rate_limits_and_server_errors():
    with FakeOpenAI() as fake:
        fake.fail_next((429, {"Retry-After": "0"}), (500, {}), (503, {}))
        provider = OpenAIProvider(api_key="sk-test", base_url=fake.base_url, backoff_seconds=0.01)
        vectors = provider.embed(["hello world"])
    assert vectors.shape == (1, 1536)
    assert len(fake.requests) == 4  # three failures, then success


def test_openai_provider_gives_up_with_a_clear_error():
    with FakeOpenAI() as fake:
        fake.fail_next(*[(500, {})] * 3)
        provider = OpenAIProvider(api_key="sk-test", base_url=fake.base_url, max_attempts=3, backoff_seconds=0.01)
        with pytest.raises(EmbeddingError) as info:
            provider.embed(["hello"])
        assert info.value.status == 503 and "HTTP 500" in info.value.details["error"]
        assert len(fake.requests) == 3

        wrong_key = OpenAIProvider(api_key="sk-wrong", base_url=fake.base_url, backoff_seconds=0.01)
        with pytest.raises(EmbeddingError, match="failed") as info:
            wrong_key.embed(["hello"])
        assert "HTTP 401" in info.value.details["error"]
        assert len(fake.requests) == 3  # a 401 is not retried (and never reached the embedding handler)


def test_openai_provider_reduced_dimensions_change_the_model_name():
    with FakeOpenAI() as fake:
        provider = OpenAIProvider(api_key="sk-test", base_url=fake.base_url, dims=256)
        vectors = provider.embed(["a", "b"])
    assert vectors.shape == (2, 256) and fake.requests[0]["dimensions"] == 256
    assert provider.name == "openai/text-embedding-3-small@256"  # stored vectors of other sizes never mix


def test_query_vectors_are_cached_per_provider(minilm):
    embeddings.query_cache.clear()
    first = embed_queries(minilm, ["find flights to Rome"])
    assert embeddings.query_cache.get((minilm.name, "find flights to Rome")) is not None
    np.testing.assert_array_equal(embed_queries(minilm, ["find flights to Rome"]), first)
