"""kwsd: a real-time keyword-spotting daemon (DistilHuBERT + keyword head, gRPC events)."""

__version__ = "0.1.0"
