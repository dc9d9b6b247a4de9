"""The remote backend: an OpenAI-compatible server (FastChat, vLLM, llama.cpp's server)."""
