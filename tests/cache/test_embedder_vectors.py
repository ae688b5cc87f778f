"""The ONNX export stores its weight matrices in 8 bits; the cache's thresholds, its
verifier and the routing priors were fitted on the float model's vectors, so the export
must give nearly the same vectors and, above all, nearly the same similarities."""

import numpy as np
import onnx

from apps.cache.embedder import OnnxEmbedder, TorchEmbedder, export_path

# Short and long, near pairs (paraphrases, one word changed) and far ones.
QUERIES = [
    "How do I reset my card PIN?", "How can I reset the PIN on my card?", "how do i reset my card pin",
    "Can I have a virtual card?", "can I have a non virtual card?", "My card payment did not go through",
    "My card payment went through", "Why was my payment declined?", "Why did my transfer get declined?",
    "How long does a European transfer take?", "How long can an EU transfer take?",
    "What are the fees for top-ups?", "What fees do you have for top ups?", "I was charged a 5 dollar fee",
    "I was charged a 10 dollar fee", "My cash withdrawal was partly declined",
    "could you tell me my name", "could you tell me your name", "please start calling me bob",
    "what time is it in dallas", "what timezone is dallas in", "set an alarm for 7 am",
    "set an alarm for 8 am", "what is on my calendar for friday", "play some jazz music in the kitchen",
    "turn the living room lights off", "what's the weather like tomorrow in london",
    "remind me to call my mother when I get home tonight after work",
    "I moved house last month and I would like to update the address on my account and on my card",
    "order a large pepperoni pizza", "tell me a joke", "how many transactions can I make with a disposable card",
]


def test_the_export_holds_its_weight_matrices_in_8_bit_blocks():
    graph = onnx.load(str(export_path()), load_external_data=False).graph
    quantized = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
                 for n in graph.node if n.op_type == "MatMulNBits"]
    assert len(quantized) == 36 and all(q["bits"] == 8 and q["block_size"] == 32 for q in quantized)


def test_the_8_bit_export_keeps_the_float_models_vectors_and_similarities():
    exported, reference = OnnxEmbedder().embed(QUERIES), TorchEmbedder().embed(QUERIES)
    assert np.allclose(np.linalg.norm(exported, axis=1), 1.0, atol=1e-4)
    assert (exported * reference).sum(axis=1).min() > 0.998
    upper = np.triu_indices(len(QUERIES), 1)
    moved = np.abs(exported @ exported.T - reference @ reference.T)[upper]
    # A threshold of 0.90 is crossed only by pairs that sat within this of it.
    assert moved.max() < 0.02 and np.median(moved) < 0.003
