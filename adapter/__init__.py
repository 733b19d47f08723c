"""The runner-contract HTTP adapter: go-livepeer talks to it as to Livepeer's own runner."""

__version__ = "0.1.0"
