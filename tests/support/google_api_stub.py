"""A local stand-in for the Google Cloud APIs the cloud-only checks call, served over gRPC.

gRPC, not REST: it is the transport the production clients use (their default),
and the only one the installed Cloud Monitoring v3 client has. The server listens
on 127.0.0.1 without TLS; Google's generated clients reach it through a transport
built on an insecure channel, so everything from the client's request message to
the bytes on the wire and back is the library's own code.

Every request is decoded into the API's proto-plus message and recorded in order;
the answer comes from the responder the test registered for that method. A
responder that raises KeyError (a resource name it does not know) becomes
NOT_FOUND, as the real API answers; a method with no responder is UNIMPLEMENTED.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.cloud import functions_v2, monitoring_v3, run_v2
from google.protobuf import empty_pb2

GET_FUNCTION = "/google.cloud.functions.v2.FunctionService/GetFunction"
GET_SERVICE = "/google.cloud.run.v2.Services/GetService"
GET_REVISION = "/google.cloud.run.v2.Revisions/GetRevision"
GET_JOB = "/google.cloud.run.v2.Jobs/GetJob"
LIST_ALERT_POLICIES = "/google.monitoring.v3.AlertPolicyService/ListAlertPolicies"
CREATE_TIME_SERIES = "/google.monitoring.v3.MetricService/CreateTimeSeries"

# The request message each method's bytes decode into (as the generated transports declare them).
REQUEST_TYPES: dict[str, Any] = {
    GET_FUNCTION: functions_v2.GetFunctionRequest,
    GET_SERVICE: run_v2.GetServiceRequest,
    GET_REVISION: run_v2.GetRevisionRequest,
    GET_JOB: run_v2.GetJobRequest,
    LIST_ALERT_POLICIES: monitoring_v3.ListAlertPoliciesRequest,
    CREATE_TIME_SERIES: monitoring_v3.CreateTimeSeriesRequest,
}

Responder = Callable[[Any], Any]
Client = TypeVar("Client")


@dataclass(frozen=True)
class Call:
    method: str
    request: Any  # the proto-plus request message


def empty(_request: Any) -> empty_pb2.Empty:
    """The answer of a method whose response is google.protobuf.Empty (CreateTimeSeries)."""
    return empty_pb2.Empty()


class GoogleApiStub:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._responders: dict[str, Responder] = {}
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self._server.add_generic_rpc_handlers([_Handler(self)])
        self.address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._channel: grpc.Channel | None = None

    def answer(self, method: str, responder: Responder) -> None:
        """Serve `method` (one of the constants above) with `responder(request) -> response message`."""
        if method not in REQUEST_TYPES:
            raise ValueError(f"{method}: add its request type to REQUEST_TYPES")
        self._responders[method] = responder

    def requests(self, method: str) -> list[Any]:
        return [call.request for call in self.calls if call.method == method]

    def client(self, client_class: Callable[..., Client]) -> Client:
        """A generated client (FunctionServiceClient, ServicesClient, ...) whose requests come here."""
        transport_class = client_class.get_transport_class("grpc")  # type: ignore[attr-defined]
        return client_class(transport=transport_class(channel=self._channel))

    def start(self) -> None:
        self._server.start()
        self._channel = grpc.insecure_channel(self.address)

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._server.stop(grace=None)

    def _serve(self, method: str, payload: bytes, context: grpc.ServicerContext) -> bytes:
        request = REQUEST_TYPES[method].deserialize(payload)
        with self._lock:
            self.calls.append(Call(method, request))
        try:
            response = self._responders[method](request)
        except KeyError as missing:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Resource {missing} not found")
        pb = getattr(type(response), "pb", None)  # proto-plus messages wrap a protobuf one
        return (pb(response) if pb else response).SerializeToString()


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, stub: GoogleApiStub) -> None:
        self._stub = stub

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method not in self._stub._responders:
            return None  # grpc answers UNIMPLEMENTED
        # No (de)serializers: the handler gets and returns bytes, so the stub decodes with the API's own types.
        return grpc.unary_unary_rpc_method_handler(lambda payload, context: self._stub._serve(method, payload, context))


@contextmanager
def google_api_stub() -> Iterator[GoogleApiStub]:
    stub = GoogleApiStub()
    stub.start()
    try:
        yield stub
    finally:
        stub.stop()
