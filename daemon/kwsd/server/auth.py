"""Bearer-token check for calls that arrive over TCP.

A Unix-socket caller was already admitted by the socket's file permissions, so only TCP peers
must present `authorization: Bearer <token>`. The comparison is constant-time (hmac), so the
time a refusal takes says nothing about how much of a guess was right. The health service is
exempt: load balancers and supervisors probe it without credentials, and it reveals nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable

import grpc

HEALTH_PREFIX = "/grpc.health.v1.Health/"


def _peer_is_local_socket(context: grpc.ServicerContext) -> bool:
    return context.peer().startswith("unix:")


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Wraps every handler so the check runs with the call's context (which knows the peer)."""

    def __init__(self, token: str, exempt_prefixes: Iterable[str] = (HEALTH_PREFIX,)) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self._expected = f"Bearer {token}".encode()
        self._exempt = tuple(exempt_prefixes)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(self._exempt):
            return handler
        return _wrap(handler, self._check)

    def _check(self, context: grpc.ServicerContext) -> None:
        if _peer_is_local_socket(context):
            return
        values = [v for k, v in context.invocation_metadata() if k == "authorization"]
        if not values:
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "missing token: send metadata 'authorization: Bearer <token>'")
        given = values[0].encode() if isinstance(values[0], str) else values[0]
        if not hmac.compare_digest(given, self._expected):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong token")


class ClientNameInterceptor(grpc.ServerInterceptor):
    """With mutual TLS and an allow-list, only certificates with a listed name may call."""

    def __init__(self, allowed_names: Iterable[str]) -> None:
        self._allowed = {n for n in allowed_names if n}

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(HEALTH_PREFIX):
            return handler
        return _wrap(handler, self._check)

    def _check(self, context: grpc.ServicerContext) -> None:
        if _peer_is_local_socket(context):
            return
        auth = context.auth_context()
        names = {v.decode() for key in ("x509_common_name", "x509_subject_alternative_name")
                 for v in auth.get(key, [])}
        if not names & self._allowed:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"client certificate {sorted(names) or '(none)'} is not allowed")


def _wrap(handler: grpc.RpcMethodHandler,
          check: Callable[[grpc.ServicerContext], None]) -> grpc.RpcMethodHandler:
    """The same kind of handler (unary/streaming both ways), running `check` first."""
    if handler.unary_unary:
        inner = handler.unary_unary

        def unary_unary(request, context):
            check(context)
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        inner_us = handler.unary_stream

        def unary_stream(request, context):
            check(context)
            yield from inner_us(request, context)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        def stream_unary(request_iterator, context):
            check(context)
            return inner_su(request_iterator, context)

        return grpc.stream_unary_rpc_method_handler(
            stream_unary, handler.request_deserializer, handler.response_serializer)
    inner_ss = handler.stream_stream

    def stream_stream(request_iterator, context):
        check(context)
        yield from inner_ss(request_iterator, context)

    return grpc.stream_stream_rpc_method_handler(
        stream_stream, handler.request_deserializer, handler.response_serializer)
