"""What the orchestrator stores of an event it cannot even serialise: a bounded repr, never a crash."""

from __future__ import annotations

from phase3ops.rejected_messages import event_bytes


def test_an_event_json_cannot_write_is_kept_as_a_bounded_repr():
    circular: dict = {"message": {"messageId": "7"}}
    circular["message"]["self"] = circular
    stored = event_bytes(circular)
    assert stored.startswith(b"{'message': {") and b"messageId" in stored

    deep: list = []
    for _ in range(100_000):  # deeper than json.dumps can recurse
        deep = [deep]
    assert event_bytes(deep).count(b"[") <= 9  # reprlib's maxlevel of 8 keeps it short


def test_an_event_json_can_write_is_kept_as_json():
    assert event_bytes({"message": {"data": "e30=", "n": 1}}) == b'{"message": {"data": "e30=", "n": 1}}'
