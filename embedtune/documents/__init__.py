"""From documents to pairs (the optional chunk and generate stages): chunking, the
OpenAI-compatible client, its answer cache, the question prompt and the question filters."""
