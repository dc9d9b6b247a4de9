"""Weight files: reading checkpoints tensor by tensor, writing safetensors shards as a
stream, and building Vicuna weights from a base plus a delta."""
