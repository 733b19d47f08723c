"""The OpenAI-compatible door: /v1/chat/completions, /v1/models, /v1/images/generations and
/v1/audio/transcriptions over the runner service (docs/openai-and-workerbee.md)."""
