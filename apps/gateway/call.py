"""What the gateway knows about one call while serving it: state only, filled in by the
stages of apps.gateway.pipeline and read by the record stage at the end."""

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from apps.billing.services import Promise
from apps.cache.services import Miss, Plan
from apps.core import logs
from apps.core.llm import ChatResult, Usage
from apps.providers.catalog import ModelInfo
from apps.providers.dispatch import Outcome
from apps.routing.judges import Judge
from apps.routing.services import Config as RoutingConfig
from apps.routing.services import Decision
from apps.routing.speculation import Plan as SpeculationPlan
from apps.routing.speculation import Run as SpeculationRun
from apps.tenants.keyauth import Principal


@dataclass
class Call:
    endpoint: str                    # chat.completions | messages | embeddings | models | feedback | count_tokens
    request_id: str = field(default_factory=lambda: "req_" + uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    arrived: datetime = field(default_factory=lambda: datetime.now(UTC))  # its ledger row's time
    # Admit
    principal: Principal | None = None
    admission: asyncio.Future | None = None   # the rate-limit check, while it runs
    # Parse
    model_requested: str = ""
    stream: bool = False
    prompt: str | None = None
    model: ModelInfo | None = None
    needs: frozenset[str] = frozenset()       # the capabilities a model must have to serve it (ChatRequest.needs)
    # Cache: miss | exact | semantic | off
    cache: str = "off"
    cache_plan: Plan | None = None            # when the cache may be used
    cache_miss: Miss | None = None            # what writing the fresh answer needs
    cache_similarity: float | None = None
    cache_entry_id: int | None = None
    replayed: Usage | None = None             # a hit: the tokens of the answer it replayed
    replayed_model: str = ""                  # a hit: the model that wrote it (may have left the catalog)
    # Route: when the model asked for is routed (`auto`, an alias, a substitutable model)
    routing: RoutingConfig | None = None
    pool: list[ModelInfo] = field(default_factory=list)
    vector: np.ndarray | None = None          # the last user turn's embedding (the cache's, when it made one)
    judge: Judge | None = None                # its draft's judge, when it may be speculated (speculation.judge_of)
    decision: Decision | None = None
    # Speculate
    speculation: SpeculationPlan | None = None
    speculated: SpeculationRun | None = None
    # Dispatch
    outcome: Outcome = field(default_factory=Outcome)
    served: ModelInfo | None = None           # the model that answered (or that we paid for)
    usage: Usage | None = None                # the tokens it charged us for
    answer: ChatResult | None = None          # the whole answer, when it finished cleanly
    # Respond: 499 until the client has had the whole answer or an error
    status: int = 499
    error_type: str = "client_closed"
    ttft_ms: float | None = None
    latency_ms: float | None = None
    # Record
    ledger: bool = True                       # listing models is not a call
    promised: Promise | None = None           # its row in the ledger's journal, before the answer went out

    def __post_init__(self) -> None:
        logs.request_id.set(self.request_id)  # every log line about this call names it

    @property
    def hit(self) -> bool:
        return self.cache in ("exact", "semantic")

    @property
    def answered(self) -> bool:
        """The call got its answer, whether or not the client stayed to read it: 200, or a
        whole answer its client hung up before (499 with the answer finished). The provider
        served it, and the cache may keep it."""
        return self.status == 200 or (self.status == 499 and self.answer is not None)

    @property
    def answering(self) -> ModelInfo | None:
        """The model whose upstream answered, or was answering when the client left (499,
        with or without its whole answer: a stream's first event had come): healthy either
        way, for its circuit breaker. Never a cache hit's (a hit called no model, and its
        model's circuit and metrics learn nothing)."""
        return self.served if self.served is not None and self.status in (200, 499) and not self.hit else None

    @property
    def upstream(self) -> ModelInfo | None:
        """The model whose upstream answered the call whole (metrics, the router's samples)."""
        return self.answering if self.answered else None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def stop_clock(self) -> None:
        if self.latency_ms is None:
            self.latency_ms = self.elapsed_ms()
