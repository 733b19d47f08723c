"""Workerbee mode: the adapter as a worker of a GPU marketplace's dispatcher ("QueenBee"), over
a WebSocket (docs/openai-and-workerbee.md). Started with the app when ADAPTER_WORKERBEE_URL is
set."""
