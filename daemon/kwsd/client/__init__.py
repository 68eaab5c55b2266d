"""Python clients of the kwsd daemon (kwsd.v1): blocking `KwsdClient`, asyncio
`AsyncKwsdClient`. Both subscribe with automatic reconnect and run audio through Detect."""

from kwsd.client.aio import AsyncKwsdClient
from kwsd.client.audio_input import DetectResult
from kwsd.client.backoff import Backoff
from kwsd.client.sync import KwsdClient

__all__ = ["AsyncKwsdClient", "Backoff", "DetectResult", "KwsdClient"]
