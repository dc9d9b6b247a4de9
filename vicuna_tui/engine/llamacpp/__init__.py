"""The llama.cpp backend (xllamacpp): a GGUF in an in-process server, its fit and prompt cache."""
