-- pgvector: embeddings for agent memory (recall of similar past tasks).
CREATE EXTENSION IF NOT EXISTS vector;
