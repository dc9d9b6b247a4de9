"""The transformers backend: loading a Hugging Face model, its decode loop, its caches."""
