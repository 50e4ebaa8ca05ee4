"""Search and its scores: dense search over stored embeddings, BM25, fusion of the two,
quantized indexes, the metrics every stage reports, and the evaluation baseline and
evaluate share."""
