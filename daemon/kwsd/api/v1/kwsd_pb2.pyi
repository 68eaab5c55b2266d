import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_DETECTION: _ClassVar[EventKind]
    EVENT_KIND_SPEECH_BEGIN: _ClassVar[EventKind]
    EVENT_KIND_SPEECH_END: _ClassVar[EventKind]

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    LINEAR16: _ClassVar[AudioEncoding]

class SourceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_STATE_UNSPECIFIED: _ClassVar[SourceState]
    SOURCE_STATE_STARTING: _ClassVar[SourceState]
    SOURCE_STATE_RUNNING: _ClassVar[SourceState]
    SOURCE_STATE_DEGRADED: _ClassVar[SourceState]
    SOURCE_STATE_STOPPED: _ClassVar[SourceState]
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_DETECTION: EventKind
EVENT_KIND_SPEECH_BEGIN: EventKind
EVENT_KIND_SPEECH_END: EventKind
ENCODING_UNSPECIFIED: AudioEncoding
LINEAR16: AudioEncoding
SOURCE_STATE_UNSPECIFIED: SourceState
SOURCE_STATE_STARTING: SourceState
SOURCE_STATE_RUNNING: SourceState
SOURCE_STATE_DEGRADED: SourceState
SOURCE_STATE_STOPPED: SourceState

class Event(_message.Message):
    __slots__ = ("kind", "keyword", "confidence", "threshold", "source_id", "start_sample", "end_sample", "start_offset", "end_offset", "wall_time", "sequence", "model_id", "events_lost", "enrolled")
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    START_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    END_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    START_OFFSET_FIELD_NUMBER: _ClassVar[int]
    END_OFFSET_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_LOST_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    kind: EventKind
    keyword: str
    confidence: float
    threshold: float
    source_id: str
    start_sample: int
    end_sample: int
    start_offset: _duration_pb2.Duration
    end_offset: _duration_pb2.Duration
    wall_time: _timestamp_pb2.Timestamp
    sequence: int
    model_id: str
    events_lost: int
    enrolled: bool
    def __init__(self, kind: _Optional[_Union[EventKind, str]] = ..., keyword: _Optional[str] = ..., confidence: _Optional[float] = ..., threshold: _Optional[float] = ..., source_id: _Optional[str] = ..., start_sample: _Optional[int] = ..., end_sample: _Optional[int] = ..., start_offset: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., end_offset: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., wall_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ..., model_id: _Optional[str] = ..., events_lost: _Optional[int] = ..., enrolled: bool = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("keywords", "min_confidence", "sources", "include_speech_activity", "client_name")
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SPEECH_ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    keywords: _containers.RepeatedScalarFieldContainer[str]
    min_confidence: float
    sources: _containers.RepeatedScalarFieldContainer[str]
    include_speech_activity: bool
    client_name: str
    def __init__(self, keywords: _Optional[_Iterable[str]] = ..., min_confidence: _Optional[float] = ..., sources: _Optional[_Iterable[str]] = ..., include_speech_activity: bool = ..., client_name: _Optional[str] = ...) -> None: ...

class DetectConfig(_message.Message):
    __slots__ = ("sample_rate_hz", "encoding", "channels", "keywords", "min_confidence", "label")
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    sample_rate_hz: int
    encoding: AudioEncoding
    channels: int
    keywords: _containers.RepeatedScalarFieldContainer[str]
    min_confidence: float
    label: str
    def __init__(self, sample_rate_hz: _Optional[int] = ..., encoding: _Optional[_Union[AudioEncoding, str]] = ..., channels: _Optional[int] = ..., keywords: _Optional[_Iterable[str]] = ..., min_confidence: _Optional[float] = ..., label: _Optional[str] = ...) -> None: ...

class DetectRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: DetectConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[DetectConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ("detection", "summary")
    DETECTION_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    detection: Event
    summary: DetectSummary
    def __init__(self, detection: _Optional[_Union[Event, _Mapping]] = ..., summary: _Optional[_Union[DetectSummary, _Mapping]] = ...) -> None: ...

class DetectSummary(_message.Message):
    __slots__ = ("stream_id", "input_frames", "samples_processed", "audio_duration", "detections", "real_time_factor")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    AUDIO_DURATION_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    REAL_TIME_FACTOR_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    input_frames: int
    samples_processed: int
    audio_duration: _duration_pb2.Duration
    detections: int
    real_time_factor: float
    def __init__(self, stream_id: _Optional[str] = ..., input_frames: _Optional[int] = ..., samples_processed: _Optional[int] = ..., audio_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., detections: _Optional[int] = ..., real_time_factor: _Optional[float] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_id", "name", "version", "keywords", "labels", "thresholds", "sample_rate_hz", "window_samples", "hop_samples", "window", "hop", "limits", "precision", "enrolled_keywords")
    class ThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    HOP_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    HOP_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    name: str
    version: str
    keywords: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[str]
    thresholds: _containers.ScalarMap[str, float]
    sample_rate_hz: int
    window_samples: int
    hop_samples: int
    window: _duration_pb2.Duration
    hop: _duration_pb2.Duration
    limits: Limits
    precision: str
    enrolled_keywords: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., keywords: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[str]] = ..., thresholds: _Optional[_Mapping[str, float]] = ..., sample_rate_hz: _Optional[int] = ..., window_samples: _Optional[int] = ..., hop_samples: _Optional[int] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., hop: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., precision: _Optional[str] = ..., enrolled_keywords: _Optional[_Iterable[str]] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_streams", "max_chunk_bytes", "max_message_bytes", "min_sample_rate_hz", "max_sample_rate_hz", "max_channels")
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    MAX_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    max_streams: int
    max_chunk_bytes: int
    max_message_bytes: int
    min_sample_rate_hz: int
    max_sample_rate_hz: int
    max_channels: int
    def __init__(self, max_streams: _Optional[int] = ..., max_chunk_bytes: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., min_sample_rate_hz: _Optional[int] = ..., max_sample_rate_hz: _Optional[int] = ..., max_channels: _Optional[int] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SourceStatus(_message.Message):
    __slots__ = ("id", "kind", "state", "state_detail", "detail", "overflows", "real_time_factor")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_DETAIL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    OVERFLOWS_FIELD_NUMBER: _ClassVar[int]
    REAL_TIME_FACTOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    state: SourceState
    state_detail: str
    detail: str
    overflows: int
    real_time_factor: float
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[_Union[SourceState, str]] = ..., state_detail: _Optional[str] = ..., detail: _Optional[str] = ..., overflows: _Optional[int] = ..., real_time_factor: _Optional[float] = ...) -> None: ...

class SubscriberStatus(_message.Message):
    __slots__ = ("name", "queued", "events_lost")
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_LOST_FIELD_NUMBER: _ClassVar[int]
    name: str
    queued: int
    events_lost: int
    def __init__(self, name: _Optional[str] = ..., queued: _Optional[int] = ..., events_lost: _Optional[int] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("uptime", "sources", "vad_duty_cycle", "real_time_factor", "overflows", "streams_open", "subscribers", "serving", "stopping", "model_id", "time", "reloads", "last_reload_error", "precision", "inference")
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    VAD_DUTY_CYCLE_FIELD_NUMBER: _ClassVar[int]
    REAL_TIME_FACTOR_FIELD_NUMBER: _ClassVar[int]
    OVERFLOWS_FIELD_NUMBER: _ClassVar[int]
    STREAMS_OPEN_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    RELOADS_FIELD_NUMBER: _ClassVar[int]
    LAST_RELOAD_ERROR_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_FIELD_NUMBER: _ClassVar[int]
    uptime: _duration_pb2.Duration
    sources: _containers.RepeatedCompositeFieldContainer[SourceStatus]
    vad_duty_cycle: float
    real_time_factor: float
    overflows: int
    streams_open: int
    subscribers: _containers.RepeatedCompositeFieldContainer[SubscriberStatus]
    serving: bool
    stopping: bool
    model_id: str
    time: _timestamp_pb2.Timestamp
    reloads: int
    last_reload_error: str
    precision: str
    inference: InferenceStatus
    def __init__(self, uptime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., sources: _Optional[_Iterable[_Union[SourceStatus, _Mapping]]] = ..., vad_duty_cycle: _Optional[float] = ..., real_time_factor: _Optional[float] = ..., overflows: _Optional[int] = ..., streams_open: _Optional[int] = ..., subscribers: _Optional[_Iterable[_Union[SubscriberStatus, _Mapping]]] = ..., serving: bool = ..., stopping: bool = ..., model_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reloads: _Optional[int] = ..., last_reload_error: _Optional[str] = ..., precision: _Optional[str] = ..., inference: _Optional[_Union[InferenceStatus, _Mapping]] = ...) -> None: ...

class InferenceStatus(_message.Message):
    __slots__ = ("batching", "device", "max_batch", "max_wait_ms", "batches", "windows", "mean_batch_size", "recent_mean_batch_size", "max_batch_seen", "queue_wait_p50_ms", "queue_wait_p95_ms", "late_windows", "dropped_windows")
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    MEAN_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    RECENT_MEAN_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SEEN_FIELD_NUMBER: _ClassVar[int]
    QUEUE_WAIT_P50_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_WAIT_P95_MS_FIELD_NUMBER: _ClassVar[int]
    LATE_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    batching: bool
    device: str
    max_batch: int
    max_wait_ms: float
    batches: int
    windows: int
    mean_batch_size: float
    recent_mean_batch_size: float
    max_batch_seen: int
    queue_wait_p50_ms: float
    queue_wait_p95_ms: float
    late_windows: int
    dropped_windows: int
    def __init__(self, batching: bool = ..., device: _Optional[str] = ..., max_batch: _Optional[int] = ..., max_wait_ms: _Optional[float] = ..., batches: _Optional[int] = ..., windows: _Optional[int] = ..., mean_batch_size: _Optional[float] = ..., recent_mean_batch_size: _Optional[float] = ..., max_batch_seen: _Optional[int] = ..., queue_wait_p50_ms: _Optional[float] = ..., queue_wait_p95_ms: _Optional[float] = ..., late_windows: _Optional[int] = ..., dropped_windows: _Optional[int] = ...) -> None: ...

class EnrollConfig(_message.Message):
    __slots__ = ("name", "sample_rate_hz", "encoding", "channels", "fa_target_per_hour", "keep_audio")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    FA_TARGET_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    KEEP_AUDIO_FIELD_NUMBER: _ClassVar[int]
    name: str
    sample_rate_hz: int
    encoding: AudioEncoding
    channels: int
    fa_target_per_hour: float
    keep_audio: bool
    def __init__(self, name: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., encoding: _Optional[_Union[AudioEncoding, str]] = ..., channels: _Optional[int] = ..., fa_target_per_hour: _Optional[float] = ..., keep_audio: bool = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("config", "example")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_FIELD_NUMBER: _ClassVar[int]
    config: EnrollConfig
    example: bytes
    def __init__(self, config: _Optional[_Union[EnrollConfig, _Mapping]] = ..., example: _Optional[bytes] = ...) -> None: ...

class ExampleCheck(_message.Message):
    __slots__ = ("index", "duration_s", "level_dbfs", "problems")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    LEVEL_DBFS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    index: int
    duration_s: float
    level_dbfs: float
    problems: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, index: _Optional[int] = ..., duration_s: _Optional[float] = ..., level_dbfs: _Optional[float] = ..., problems: _Optional[_Iterable[str]] = ...) -> None: ...

class EnrolledKeyword(_message.Message):
    __slots__ = ("name", "threshold", "templates", "encoder_id", "fa_target_per_hour", "usable")
    NAME_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    ENCODER_ID_FIELD_NUMBER: _ClassVar[int]
    FA_TARGET_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    USABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    threshold: float
    templates: int
    encoder_id: str
    fa_target_per_hour: float
    usable: bool
    def __init__(self, name: _Optional[str] = ..., threshold: _Optional[float] = ..., templates: _Optional[int] = ..., encoder_id: _Optional[str] = ..., fa_target_per_hour: _Optional[float] = ..., usable: bool = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("enrolled", "keyword", "checks", "seconds")
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    enrolled: bool
    keyword: EnrolledKeyword
    checks: _containers.RepeatedCompositeFieldContainer[ExampleCheck]
    seconds: float
    def __init__(self, enrolled: bool = ..., keyword: _Optional[_Union[EnrolledKeyword, _Mapping]] = ..., checks: _Optional[_Iterable[_Union[ExampleCheck, _Mapping]]] = ..., seconds: _Optional[float] = ...) -> None: ...

class ListKeywordsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListKeywordsResponse(_message.Message):
    __slots__ = ("keywords",)
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    keywords: _containers.RepeatedCompositeFieldContainer[EnrolledKeyword]
    def __init__(self, keywords: _Optional[_Iterable[_Union[EnrolledKeyword, _Mapping]]] = ...) -> None: ...

class DeleteKeywordRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteKeywordResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
