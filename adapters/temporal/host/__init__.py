"""The host side of the Temporal adapter: shared with the sandbox, never re-imported per run."""

from ._client import TemporalDurableClient, TemporalRunHandle
from ._codec import (
    AesGcmCodec,
    CodecKey,
    CodecKeyError,
    MalformedCodecRequest,
    PayloadDecryptionError,
    UnknownEncryptionKey,
    codec_json,
    parse_codec_keys,
)
from ._converter import data_converter
from ._ingress import EVENT_SIGNAL, EventDelivery, EventIngress, StartRoute
from ._progress import DESCRIBE_QUERY, SEARCH_ATTRIBUTES, RunProgress
from ._replay import load_history, replay
from ._schedules import SyncReport, sync_schedules
from ._stuck import find_stuck
from ._stuck_metric import report_stuck, report_stuck_once
from ._worker import (
    SANDBOX_PASSTHROUGH,
    SearchAttributesMissing,
    build_worker,
    ensure_search_attributes,
    sandbox_runner,
    workflow_class,
)

__all__ = [
    "AesGcmCodec",
    "CodecKey",
    "CodecKeyError",
    "MalformedCodecRequest",
    "PayloadDecryptionError",
    "UnknownEncryptionKey",
    "codec_json",
    "parse_codec_keys",
    "DESCRIBE_QUERY",
    "EVENT_SIGNAL",
    "SANDBOX_PASSTHROUGH",
    "SEARCH_ATTRIBUTES",
    "EventDelivery",
    "EventIngress",
    "RunProgress",
    "SearchAttributesMissing",
    "StartRoute",
    "SyncReport",
    "TemporalDurableClient",
    "TemporalRunHandle",
    "build_worker",
    "data_converter",
    "ensure_search_attributes",
    "find_stuck",
    "report_stuck",
    "report_stuck_once",
    "load_history",
    "replay",
    "sandbox_runner",
    "sync_schedules",
    "workflow_class",
]
