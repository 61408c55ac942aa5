"""A failed gRPC call as a channel hands it back, for interceptors that inject faults into the real clients."""

from __future__ import annotations

import grpc


class FailedCall(grpc.RpcError, grpc.Call):
    """The call's outcome: `code`, with `details`; raised by `result()` as a real failed future is."""

    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def result(self, timeout=None):
        raise self

    def code(self):
        return self._code

    def details(self):
        return self._details

    def initial_metadata(self):
        return ()

    def trailing_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False
