"""`kwsd train` end to end: data -> window features -> head -> calibrated thresholds -> bundle.

1. Clips from a corpus manifest or a Speech Commands folder, split by voice/speaker.
2. Windows as the stream places them, augmented in `copies` passes; hidden states computed
   once through the streaming path and cached (frozen encoder), or window audio cached and the
   encoder's top layer / all of it trained too (`finetune`).
3. The head (and the unfrozen encoder part) trained with plain cross entropy, one checkpoint per
   epoch, resumable.
4. Held-out voices written as an evaluation set and run through the real Pipeline (VAD gate,
   streaming classifier, decision); thresholds per keyword for the false-alarm target of each
   sensitivity; then the same set evaluated again at the default thresholds for the metrics.
5. The bundle: encoder (HF layout), head, kws.json with everything above.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kwsd.corpus.texts import says_near_homophone
from kwsd.head_training import calibrate as cal
from kwsd.head_training.dataset import (
    SILENCE,
    UNKNOWN,
    Clip,
    labels_for,
    read_corpus_manifest,
    read_speech_commands,
)
from kwsd.head_training.examples import WindowPolicy
from kwsd.head_training.features import (
    StatesFn,
    build_windows,
    cache_key,
    choose_rows,
    encode_window_audio,
    file_digest,
    with_top_recomputed,
)
from kwsd.head_training.fit import (
    FitConfig,
    average_weights,
    evaluate_windows,
    fit,
    loss_function,
)
from kwsd.model.bundle import ModelBundle, head_config_for, make_meta, save_bundle
from kwsd.model.head import KeywordHead

log = logging.getLogger(__name__)


class TrainError(RuntimeError):
    """Training cannot start or continue; the message says why."""


@dataclass
class TrainConfig:
    data: Path
    out: Path
    workdir: Path
    encoder: str = "random"  # HF folder / bundle folder, or "random" (demo size, tests)
    keywords: list[str] | None = None
    name: str = "kws"
    version: str = "0"
    window_ms: int = 1000
    hop_ms: int = 200
    copies: int = 1
    real_repeats: int = 1  # real recordings listed this many times (each with `copies` passes)
    synthetic_only_repeats: int = 1  # so are synthetic clips of keywords no real clip says
    real_negative_repeats: int | None = None  # real recordings of no keyword (None: real_repeats)
    synthetic_negative_repeats: int = 1  # synthetic clips of no keyword (not noise) as often
    confusable_repeats: int | None = None  # synthetic near-misses (None: as the line above)
    average_fits: int = 1  # fit the head N times (batch-order seeds seed..seed+N-1), average them
    heldout_copies: int = 1  # augmented compositions of the calibration set, pooled
    test_copies: int = 1  # augmented compositions of the test set (held-out figures), pooled
    drop_near_homophones: bool = False  # no training negatives that say texts.NEAR_HOMOPHONES
    heldout_max_clips: int | None = 1500  # for calibration and held-out figures
    finetune: str = "none"  # none | top | all
    fit: FitConfig = field(default_factory=FitConfig)
    max_clips: int | None = None  # per split (tests, smoke runs)
    max_windows: int | None = None  # encode all keyword windows + a sample of the others
    augment: bool = True
    calibrate: bool = True
    final_eval: bool = True
    resume: bool = False
    prepare_only: bool = False  # stop after the encoder-independent window audio
    progress: bool = True
    jobs: int = 1  # processes for the held-out pipeline passes
    mlp_dim: int = 256
    temporal_layers: int = 0  # kwsd.model.head: dilated convolutions over frames
    smoothing_ms: int = 0  # decision averaging span, calibrated with and kept in kws.json
    seed: int = 0
    calibrate_on: str = "heldout"  # heldout: every held-out negative; real: real recordings only
    fa_targets: dict[str, float] | None = None  # sensitivity -> false alarms/h (calibrate's)


def load_clips(cfg: TrainConfig) -> tuple[list[Clip], list[str], str]:
    data = Path(cfg.data)
    if data.is_dir():
        clips, keywords = read_speech_commands(data, cfg.keywords)
        source = "speech-commands-folder"
    else:
        clips, keywords = read_corpus_manifest(data, cfg.keywords)
        source = "corpus-manifest"
    if not keywords:
        raise TrainError(f"{data}: no keywords found (give --keywords)")
    return clips, keywords, source


def _limit(clips: list[Clip], n: int | None, seed: int) -> list[Clip]:
    """A deterministic, label-stratified subset (smoke runs keep every label)."""
    if n is None or len(clips) <= n:
        return clips
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Clip]] = {}
    for c in clips:
        by_label.setdefault(c.label, []).append(c)
    per = max(1, n // len(by_label))
    out = []
    for label in sorted(by_label):
        group = by_label[label]
        out += [group[i] for i in sorted(rng.permutation(len(group))[:per])]
    return out


HEARD_SHARE = 0.5  # real clips of a keyword, against the best-heard one, to count as heard
NEAR_MISS_KINDS = ("confusable", "partial")  # corpus kinds that sound like part of a keyword
VAL_WINDOW_CLIPS = 300  # held-out clips whose windows give the per-epoch validation loss


def _limit_random(clips: list[Clip], n: int, seed: int) -> list[Clip]:
    if len(clips) <= n:
        return clips
    rng = np.random.default_rng(seed + 13)
    return [clips[i] for i in sorted(rng.permutation(len(clips))[:n])]


WINDOWS_RECORD = "windows.json"


def _audio_cache(workdir: Path, key: str) -> Path:
    """The folder of one window-audio cache (what the states caches are made from)."""
    return workdir / "cache" / f"audio-{key}"


def _write_windows_record(workdir: Path, train_key: str, val_key: str, train_states: Path
                          ) -> None:
    """Which cached windows this run trained and validated on (WORKDIR/windows.json): the
    cascade fit of scripts/train-demo.sh reads it instead of guessing among a workdir's caches,
    where several heads' window sets can sit side by side."""
    record = {"windows": str(_audio_cache(workdir, train_key)),
              "val_windows": str(_audio_cache(workdir, val_key)) if val_key else None,
              "teacher_states": str(train_states)}
    (workdir / WINDOWS_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def validation_clips(held: list[Clip], cfg: TrainConfig) -> list[Clip]:
    """Held-out clips whose windows give the validation loss that picks the epoch. With
    `calibrate_on="real"` they are the held-out real callers' (every keyword clip) and real
    speech: the model is chosen on real voices."""
    if cfg.calibrate_on != "real":
        return _limit_random(held, VAL_WINDOW_CLIPS, cfg.seed)
    from kwsd.corpus.real import REAL_ENGINE

    real = [c for c in held if c.engine == REAL_ENGINE]
    pos = [c for c in real if c.label not in (UNKNOWN, SILENCE)]
    neg = [c for c in real if c.label in (UNKNOWN, SILENCE)]
    return pos + _limit_random(neg, max(VAL_WINDOW_CLIPS, 2 * len(pos)), cfg.seed)


def _stream_states(states_fn, part, cfg, key_parts, policy, label_index, augmenter, copies,
                   tag):
    key = cache_key({**key_parts, "clips": [str(c.path) for c in part], "copies": copies,
                     "tag": tag, "stream": True, "encoder": states_fn.encoder_id})
    cfg_e = states_fn.bundle.encoder.config
    shape = (cfg_e.num_hidden_layers + 1, cfg_e.num_frames(policy.window), cfg_e.hidden_size)
    return build_windows(cfg.workdir / "cache" / f"stream-{key}", part, label_index, policy,
                         copies, cfg.seed + (0 if tag == "train" else 7919),
                         lambda audio, starts: states_fn(audio, starts).numpy(), shape,
                         np.dtype(np.float16), augmenter, cfg.progress,
                         desc=f"{tag} features")


def repeat_clips(clips: list[Clip], real_repeats: int, synthetic_only_repeats: int = 1,
                 real_negative_repeats: int | None = None,
                 synthetic_negative_repeats: int = 1,
                 confusable_repeats: int | None = None) -> list[Clip]:
    """The training clips with every real recording listed `real_repeats` times (those that say
    no keyword `real_negative_repeats` times, if given), and every synthetic clip of a keyword
    that no real recording says (or only a few, under HEARD_SHARE of the best-heard keyword's
    count) `synthetic_only_repeats` times.

    Each listing gets its own augmented passes, so the real voices weigh more than the many
    synthetic ones without repeating identical windows; the second count lets the keywords
    that only synthetic voices say keep their share of the loss beside the real ones; the
    third lets real keyword-free speech weigh less than real keywords. Synthetic clips that
    say no keyword (sentences, words, partial and confusable words; not noise) are listed
    `synthetic_negative_repeats` times, so that synthetic speech keeps its weight as a
    negative beside the repeated real speech. Of those, the near-misses (NEAR_MISS_KINDS:
    confusable words such as "compute" and partial ones such as "puter") are listed
    `confusable_repeats` times instead, if given: the words a keyword is most often confused
    with weigh more than sentences."""
    from kwsd.corpus.real import REAL_ENGINE

    if real_negative_repeats is None:
        real_negative_repeats = real_repeats
    near_repeats = synthetic_negative_repeats if confusable_repeats is None else confusable_repeats
    for name, repeats in (("real", real_repeats), ("synthetic-only", synthetic_only_repeats),
                          ("real-negative", real_negative_repeats),
                          ("synthetic-negative", synthetic_negative_repeats),
                          ("confusable", near_repeats)):
        if repeats < 1:
            raise TrainError(f"{name} repeats must be >= 1, got {repeats}")
    real = [c for c in clips if c.engine == REAL_ENGINE]
    real_counts = Counter(c.label for c in real if c.label not in (UNKNOWN, SILENCE))
    most = max(real_counts.values(), default=0)
    # a keyword that a few real clips say (computer, in 16 WUW sentences) stays synthetic-only
    heard = {kw for kw, n in real_counts.items() if n >= HEARD_SHARE * most}
    unheard = [c for c in clips if c.engine != REAL_ENGINE and c.label not in heard
               and c.label not in (UNKNOWN, SILENCE)]

    def listings(clip: Clip) -> int:
        return real_negative_repeats if clip.label in (UNKNOWN, SILENCE) else real_repeats

    again = [c for n in range(1, max(real_repeats, real_negative_repeats))
             for c in real if n < listings(c)]
    spoken = [c for c in clips if c.engine != REAL_ENGINE and c.label == UNKNOWN]
    near: list[Clip] = []
    if confusable_repeats is not None:  # else listed with the rest, in the order kept before
        near = [c for c in spoken if c.kind in NEAR_MISS_KINDS]
        spoken = [c for c in spoken if c.kind not in NEAR_MISS_KINDS]
    return clips + again + unheard * (synthetic_only_repeats - 1) + spoken * (
        synthetic_negative_repeats - 1) + near * (near_repeats - 1)


def calibration_clips(held: list[Clip], cfg: TrainConfig) -> list[Clip]:
    """The held-out clips thresholds are set on, few enough for a pipeline pass or two.

    `calibrate_on="real"`: only real recordings (engine `real`, see kwsd.corpus.real), all of
    them, so a false-alarm target means false alarms on real speech; keywords without real
    examples get their thresholds from the same real negatives (no recall figure there)."""
    from kwsd.corpus.real import REAL_ENGINE

    if cfg.calibrate_on == "real":
        real = [c for c in held if c.engine == REAL_ENGINE]
        if not any(c.label in (UNKNOWN, SILENCE) for c in real):
            raise TrainError("--calibrate-on real: no held-out real negatives in the data "
                             "(add a kwsd.corpus.real manifest)")
        return real
    if cfg.heldout_max_clips is None:
        return held
    pos = [c for c in held if c.label not in (UNKNOWN, SILENCE)]
    neg = [c for c in held if c.label in (UNKNOWN, SILENCE)]
    n_pos = min(len(pos), cfg.heldout_max_clips * 2 // 5)
    pos = _limit_random(pos, n_pos, cfg.seed)
    neg = _limit_random(neg, cfg.heldout_max_clips - len(pos), cfg.seed + 1)
    return pos + neg


def test_clips(held: list[Clip], cfg: TrainConfig) -> list[Clip]:
    """Held-out clips NOT used for calibration (same voices, other clips): the held-out
    figures are measured on these, so the thresholds are not tuned on the test audio."""
    used = {c.path for c in calibration_clips(held, cfg)}
    rest = [c for c in held if c.path not in used]
    if cfg.heldout_max_clips is None:
        return rest
    pos = [c for c in rest if c.label not in (UNKNOWN, SILENCE)]
    neg = [c for c in rest if c.label in (UNKNOWN, SILENCE)]
    pos = _limit_random(pos, min(len(pos), cfg.heldout_max_clips * 2 // 5), cfg.seed + 2)
    return pos + _limit_random(neg, cfg.heldout_max_clips - len(pos), cfg.seed + 3)


def heldout_set(held: list[Clip], cfg: TrainConfig, augmenter, tag: str = "heldout") -> Path:
    """The held-out voices as an eval manifest (written once, encoder-independent)."""
    from kwsd.head_training.heldout import write_heldout_set

    # each set composed K times: thresholds and figures then rest on more than one draw of
    # augmentation and stream order (copy 0 is always the one-copy set)
    copies = cfg.heldout_copies if tag == "heldout" else cfg.test_copies
    key = cache_key({"clips": [str(c.path) for c in held], "c": copies,
                     "s": cfg.seed, "a": cfg.augment})
    return write_heldout_set(held, cfg.workdir / f"{tag}-{key}", augmenter,
                             copies, cfg.seed + (0 if tag == "heldout" else 101))


def load_encoder_from(spec: str, seed: int):
    from kwsd.model.checkpoint import CheckpointError, load_encoder
    from kwsd.model.config import demo_config
    from kwsd.model.distilhubert import DistilHubert

    if spec == "random":
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return DistilHubert(demo_config()).eval(), "random"
    try:
        enc = load_encoder(spec)
    except CheckpointError as exc:
        raise TrainError(f"encoder: {exc}") from exc
    weights = Path(spec) / "model.safetensors"
    return enc, file_digest(weights) if weights.is_file() else spec


def make_bundle(encoder, head: KeywordHead, meta: dict, path: Path) -> ModelBundle:
    """An in-memory bundle (what load_bundle returns), for the streaming path and Pipeline."""
    labels = list(meta["labels"])
    return ModelBundle(path=path, labels=labels, keywords=labels[:-2],
                       thresholds={k: float(v) for k, v in meta["thresholds"].items()},
                       window_samples=meta["window_ms"] * 16, hop_samples=meta["hop_ms"] * 16,
                       sample_rate=16000,
                       model_id=f"{meta['model']['name']}-{meta['model']['version']}",
                       encoder=encoder, head=head, meta=meta)


def training_augmenter(clips: list[Clip], enabled: bool, seed: int):
    """The run's augmenter (None when off): its babble is cut from training sentences, so an
    evaluation set built with it hears the same channel as the training windows."""
    if not enabled:
        return None
    from kwsd.audio.audiofile import read_audio_16k
    from kwsd.corpus.augment import Augmenter

    # babble from a few training sentences (never held-out voices)
    rng = np.random.default_rng(seed)
    speech = [c for c in clips if c.label == UNKNOWN and c.split == "train"]
    pick = [speech[i] for i in rng.permutation(len(speech))[:40]]
    babble = []
    for c in pick:
        try:
            babble.append(read_audio_16k(c.path))
        except ValueError:
            continue
    return Augmenter(babble_speech=babble)


def _trainable(encoder, finetune: str) -> list[torch.nn.Parameter]:
    for p in encoder.parameters():
        p.requires_grad_(False)
    if finetune == "all":
        params = list(encoder.parameters())
    elif finetune == "top":
        params = list(encoder.encoder.layers[-1].parameters())
    else:
        return []
    for p in params:
        p.requires_grad_(True)
    return params


ENCODER_LR_SCALE = 0.1  # a pretrained encoder layer learns at a tenth of the head's rate


class _Model(torch.nn.Module):
    """What is trained, as one module: the head on cached hidden states; with `top` (the
    encoder's last layer) that layer recomputed from the cached input to it (the states
    before it), so fine-tuning it needs no encoder pass over audio; with `encoder` (all of it)
    window audio through the whole encoder."""

    def __init__(self, head: KeywordHead, encoder=None, top=None) -> None:
        super().__init__()
        self.head = head
        self.encoder = encoder
        self.top = top

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:
            return self.head(torch.stack(self.encoder(x / 32768.0), dim=1))
        if self.top is not None:
            x = with_top_recomputed(x, self.top)
        return self.head(x)

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser groups: the head at `lr`, encoder weights at ENCODER_LR_SCALE x `lr`."""
        enc = [p for m in (self.encoder, self.top) if m is not None
               for p in m.parameters() if p.requires_grad]
        head = [p for p in self.head.parameters() if p.requires_grad]
        return [g for g in ({"params": head, "lr": lr},
                            {"params": enc, "lr": lr * ENCODER_LR_SCALE}) if g["params"]]


def summarize_data(clips: list[Clip], keywords: list[str], source: str, data: Path) -> dict:
    from kwsd.corpus.real import REAL_ENGINE

    by_split: dict[str, Counter] = {"train": Counter(), "heldout": Counter()}
    voices: dict[str, set] = {"train": set(), "heldout": set()}
    speakers: dict[str, set] = {"train": set(), "heldout": set()}  # real: counted, not listed
    engines: Counter = Counter()
    for c in clips:
        by_split[c.split][c.label] += 1
        if c.voice:
            (speakers if c.engine == REAL_ENGINE else voices)[c.split].add(c.voice)
        if c.engine:
            engines[c.engine] += 1
    return {"source": source, "path": str(data),
            "clips": {s: dict(sorted(v.items())) for s, v in by_split.items()},
            "voices": {s: sorted(v) for s, v in voices.items()},
            "real_speakers": {s: len(v) for s, v in speakers.items()},
            "engines": dict(sorted(engines.items()))}


def keyword_durations(clips: list[Clip], keywords: list[str]) -> dict[str, float]:
    out = {}
    for kw in keywords:
        d = [c.kw_end_s - c.kw_start_s for c in clips if c.label == kw
             and c.kw_start_s is not None and c.kw_end_s is not None]
        if d:
            out[kw] = round(float(np.median(d)), 3)
    return out


def train(cfg: TrainConfig) -> Path | None:
    t_start = time.time()
    torch.manual_seed(cfg.seed)
    clips, keywords, source = load_clips(cfg)
    train_clips = _limit([c for c in clips if c.split == "train"], cfg.max_clips, cfg.seed)
    held_clips = _limit([c for c in clips if c.split == "heldout"], cfg.max_clips, cfg.seed + 1)
    if cfg.drop_near_homophones:  # training only: held-out sets stay comparable across heads
        kept = [c for c in train_clips if c.label in keywords or not says_near_homophone(c.text)]
        log.info("--drop-near-homophones: %d training negatives left out",
                 len(train_clips) - len(kept))
        train_clips = kept
    if not train_clips:
        raise TrainError(f"{cfg.data}: no training clips")
    if cfg.average_fits < 1:
        raise TrainError(f"average_fits must be at least 1, not {cfg.average_fits}")
    if cfg.average_fits > 1 and cfg.finetune != "none":
        raise TrainError("--average-fits averages the head alone: use it with --finetune none")
    labels = labels_for(keywords)
    missing = [k for k in keywords if not any(c.label == k for c in train_clips)]
    if missing:
        raise TrainError(f"{cfg.data}: no training clips for {', '.join(missing)}")
    if cfg.calibrate:
        calibration_clips(held_clips, cfg)  # refuses a set it cannot calibrate on, up front
    log.info("%d training clips, %d held-out clips; labels %s", len(train_clips),
             len(held_clips), labels)
    encoder, enc_id = load_encoder_from(cfg.encoder, cfg.seed)
    meta = make_meta(keywords, name=cfg.name, version=cfg.version, window_ms=cfg.window_ms,
                     hop_ms=cfg.hop_ms, mlp_dim=cfg.mlp_dim,
                     temporal_layers=cfg.temporal_layers, smoothing_ms=cfg.smoothing_ms)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        head = KeywordHead(head_config_for(meta, encoder.config))
    bundle = make_bundle(encoder, head, meta, cfg.out)
    policy = WindowPolicy(window=bundle.window_samples, hop=bundle.hop_samples)
    augmenter = training_augmenter(clips, cfg.augment, cfg.seed)
    label_index = {lab: i for i, lab in enumerate(labels)}
    from_audio = cfg.finetune == "all"  # "top" trains from the cached states, like the head
    key_parts = {"window": policy.window, "hop": policy.hop,
                 "policy": dataclasses.asdict(policy), "augment": cfg.augment,
                 "seed": cfg.seed, "labels": labels, "finetune": from_audio, "v": 2}

    # -- 2. window features ------------------------------------------------------------------
    # Stage A (no encoder): augmented window audio, cached. Stage B: hidden states, cached.
    def audio_rows(audio, starts):
        return np.stack([audio[s:s + policy.window] for s in starts])

    def audio_windows(part: list[Clip], copies: int, tag: str):
        key = cache_key({**key_parts, "clips": [(str(c.path), c.label, c.kw_start_s,
                                                 c.kw_end_s) for c in part],
                         "copies": copies, "tag": tag})
        root = _audio_cache(cfg.workdir, key)
        log.info("%s window audio: %s", tag, root)
        return build_windows(root, part, label_index, policy, copies,
                             cfg.seed + (0 if tag == "train" else 7919), audio_rows,
                             (policy.window,), np.dtype(np.int16), augmenter, cfg.progress,
                             desc=f"{tag} windows"), key

    t0 = time.time()
    val_clips = validation_clips(held_clips, cfg)
    window_clips = repeat_clips(train_clips, cfg.real_repeats, cfg.synthetic_only_repeats,
                                cfg.real_negative_repeats, cfg.synthetic_negative_repeats,
                                cfg.confusable_repeats)
    train_audio, train_key = audio_windows(window_clips, cfg.copies, "train")
    val_audio, val_key = audio_windows(val_clips, 1, "heldout") if val_clips else (None, "")
    if cfg.calibrate and held_clips:
        # encoder-independent too: write it now
        heldout_set(calibration_clips(held_clips, cfg), cfg, augmenter)
        if test_clips(held_clips, cfg):
            heldout_set(test_clips(held_clips, cfg), cfg, augmenter, "heldout-test")
    if cfg.prepare_only:
        log.info("prepared %d training windows in %.0f s (--prepare-only)", len(train_audio),
                 time.time() - t0)
        return None
    if from_audio:
        train_set, val_set = train_audio, val_audio
    else:
        states_fn = StatesFn(bundle)
        states_fn.encoder_id = enc_id
        if states_fn.use_stream:
            # approximate conv cache (group norm): only the live path itself gives its features
            train_set = _stream_states(states_fn, window_clips, cfg, key_parts, policy,
                                       label_index, augmenter, cfg.copies, "train")
            val_set = (_stream_states(states_fn, val_clips, cfg, key_parts, policy,
                                      label_index, augmenter, 1, "heldout")
                       if val_clips else None)
        else:
            keep = {label_index[k] for k in keywords}
            rows = choose_rows(train_audio, cfg.max_windows, keep, cfg.seed)
            rows_key = cache_key({"rows": rows.tolist()})
            train_states = cfg.workdir / "cache" / f"states-{train_key}-{enc_id}-{rows_key}"
            train_set = encode_window_audio(train_audio, bundle, train_states,
                                            progress=cfg.progress, rows=rows, jobs=cfg.jobs)
            val_set = (encode_window_audio(
                val_audio, bundle, cfg.workdir / "cache" / f"states-{val_key}-{enc_id}",
                progress=cfg.progress) if val_audio is not None else None)
            _write_windows_record(cfg.workdir, train_key, val_key, train_states)
    feat_s = time.time() - t0
    counts = Counter(labels[i] for i in train_set.labels)
    log.info("training windows: %d %s (%.0f s)", len(train_set), dict(counts), feat_s)
    if len(train_set) == 0:
        raise TrainError("no training windows (all clips unreadable?)")

    # -- 3. fit --------------------------------------------------------------------------------
    model = _Model(head, encoder if from_audio else None,
                   encoder.encoder.layers[-1] if cfg.finetune == "top" else None)
    _trainable(encoder, cfg.finetune)
    fit_cfg = dataclasses.replace(cfg.fit, seed=cfg.seed, progress=cfg.progress)
    t0 = time.time()
    val_x, val_y = (val_set.x, val_set.labels) if val_set is not None else (None, None)
    start = {k: v.clone() for k, v in head.state_dict().items()}
    fits = []  # (batch-order seed, FitState, kept weights)
    for i in range(cfg.average_fits):
        # every fit starts from the same weights (so they can be averaged), in its own order
        head.load_state_dict(start)
        seed_cfg = dataclasses.replace(fit_cfg, seed=cfg.seed + i)
        run_dir = cfg.workdir / ("run-" + cache_key({
            **key_parts, "fit": dataclasses.asdict(seed_cfg), "n": len(train_set),
            "ft": cfg.finetune, "encoder": enc_id, "head": meta["head"]}))
        resume = cfg.resume and (run_dir / "checkpoint.pt").is_file()
        if cfg.resume and not resume:
            log.warning("--resume: no epoch checkpoint in %s yet; training from the first epoch "
                        "(cached features are reused)", run_dir)
        if cfg.average_fits > 1:
            log.info("fit %d of %d (batch-order seed %d)", i + 1, cfg.average_fits,
                     seed_cfg.seed)
        state = fit(model, model.forward, train_set.x, train_set.labels, val_x, val_y,
                    len(labels), seed_cfg, run_dir, resume=resume)
        fits.append((seed_cfg.seed, state, {k: v.clone() for k, v in head.state_dict().items()}))
    state = fits[0][1]
    averaged = None
    if len(fits) > 1:
        head.load_state_dict(average_weights([weights for _, _, weights in fits]))
        averaged = {"seeds": [seed for seed, _, _ in fits],
                    "kept_epochs": [s.best_epoch for _, s, _ in fits],
                    "fit_val_loss": [s.history[s.best_epoch - 1]["val_loss"] if s.best_epoch
                                     else None for _, s, _ in fits]}
        if val_x is not None and len(val_y):
            averaged.update(evaluate_windows(model, model.forward, val_x, val_y, loss_function(
                train_set.labels, len(labels), fit_cfg)))
        log.info("head = the average of %d fits: %s", len(fits), json.dumps(
            {k: round(v, 4) if isinstance(v, float) else v for k, v in averaged.items()}))
    fit_s = time.time() - t0
    for p in encoder.parameters():
        p.requires_grad_(False)
    encoder.eval()
    head.eval()
    if cfg.finetune != "none":
        bundle.inference_encoders.clear()  # converted copies hold the weights before training

    # -- 4. calibration on held-out voices ----------------------------------------------------
    metrics: dict = {"history": state.history}  # the first fit's
    if averaged is not None:
        metrics["averaged_fits"] = averaged
    sensitivity = None
    cal_s = 0.0
    if cfg.calibrate and held_clips:
        t0 = time.time()
        sensitivity, thr, heldout_metrics = calibrate_on_heldout(
            bundle, held_clips, keywords, cfg, augmenter)
        meta["thresholds"] = thr
        metrics["heldout_synthetic"] = heldout_metrics
        cal_s = time.time() - t0
    elif cfg.calibrate:
        log.warning("no held-out clips: thresholds stay at 0.5 (not calibrated)")
    passes = [f"{cfg.copies} augmented passes"]
    real_negative_repeats = cfg.real_negative_repeats or cfg.real_repeats
    if real_negative_repeats != cfg.real_repeats:
        passes.append(f"real recordings of a keyword {cfg.real_repeats} times as many, "
                      f"real recordings of none {real_negative_repeats} times")
    elif cfg.real_repeats > 1:
        passes.append(f"real recordings {cfg.real_repeats} times as many")
    if cfg.synthetic_only_repeats > 1:
        passes.append(f"synthetic clips of keywords without real recordings "
                      f"{cfg.synthetic_only_repeats} times as many")
    if cfg.synthetic_negative_repeats > 1:
        passes.append(f"synthetic speech of no keyword {cfg.synthetic_negative_repeats} times "
                      "as many")
    if cfg.confusable_repeats is not None:
        passes.append(f"synthetic confusable and partial words {cfg.confusable_repeats} times "
                      "as many")
    augmentation = f"kwsd.corpus.augment.Augmenter defaults ({', '.join(passes)})"
    meta.update({
        "training_data": {**summarize_data(train_clips + held_clips, keywords, source,
                                           cfg.data),
                          "windows": dict(sorted(counts.items())),
                          "augmentation": augmentation if cfg.augment else "none",
                          "encoder": cfg.encoder, "finetune": cfg.finetune},
        "keyword_duration_s": keyword_durations(train_clips, keywords),
        "metrics": metrics,
        "training": {"seed": cfg.seed, "epochs": state.epoch, "steps": state.step,
                     "kept_epoch": state.best_epoch, "average_fits": cfg.average_fits,
                     "drop_near_homophones": cfg.drop_near_homophones,
                     "features_s": round(feat_s, 1), "fit_s": round(fit_s, 1),
                     "calibration_s": round(cal_s, 1),
                     "total_s": round(time.time() - t_start, 1),
                     "fit": dataclasses.asdict(fit_cfg)},
    })
    if sensitivity is not None:
        meta["sensitivity"] = sensitivity
    bundle.meta = meta
    bundle.thresholds = dict(meta["thresholds"])
    cfg.out.mkdir(parents=True, exist_ok=True)
    save_bundle(cfg.out, encoder, head, meta)
    log.info("bundle written to %s in %.0f s", cfg.out, time.time() - t_start)
    return cfg.out


def calibrate_on_heldout(bundle: ModelBundle, held: list[Clip], keywords: list[str],
                         cfg: TrainConfig, augmenter) -> tuple[dict, dict, dict]:
    """Thresholds per sensitivity from held-out voices run through the real Pipeline."""
    from kwsd.engine.pipeline import PipelineSettings
    from kwsd.evaluation.manifest import read_eval_manifest
    from kwsd.evaluation.runner import run_files
    from kwsd.evaluation.scoring import det_curves, score

    manifest = heldout_set(calibration_clips(held, cfg), cfg, augmenter)
    items = read_eval_manifest(manifest)
    settings = PipelineSettings()
    run = run_files(bundle, list({i.file: i.path for i in items}.items()), settings,
                    progress=cfg.progress, desc="calibrate", jobs=cfg.jobs)
    refractory = settings.decision.refractory_ms / 1000
    curves = det_curves(items, run.traces, run.durations, keywords, thresholds=cal.GRID,
                        refractory_s=refractory,
                        release_ratio=settings.decision.release_ratio,
                        gap_s=1.5 * bundle.hop_samples / bundle.sample_rate,
                        all_keywords=cfg.calibrate_on == "real")
    calib = cal.calibrate(curves, keywords, cfg.fa_targets)
    thresholds = {kw: c.threshold for kw, c in calib[cal.DEFAULT_SENSITIVITY].items()}
    test = test_clips(held, cfg)
    metrics: dict = {"manifest": str(manifest), "files": len(run.files),
                     "test_manifest": (str(heldout_set(test, cfg, augmenter, "heldout-test"))
                                       if test else None),
                     "negative_hours_for_calibration": round(
                         next(iter(curves.values())).negative_hours, 4)}
    if cfg.final_eval:
        # the real decision at the chosen thresholds, on held-out clips not used to choose them
        bundle.thresholds = dict(thresholds)
        test_items = (read_eval_manifest(metrics["test_manifest"]) if metrics["test_manifest"]
                      else items)
        final = run_files(bundle, list({i.file: i.path for i in test_items}.items()), settings,
                          progress=cfg.progress, desc="held-out eval", jobs=cfg.jobs)
        result = score(test_items, final.detections, final.durations, keywords)
        metrics["at_default_thresholds"] = {
            "set": "test" if metrics["test_manifest"] else "calibration", **result.summary()}
        log.info("held-out synthetic at default thresholds: %s",
                 json.dumps({k: v for k, v in result.summary().items() if k != "keywords"}))
    negatives = ("held-out real recordings (validation callers and other real speech)"
                 if cfg.calibrate_on == "real" else "held-out negatives")
    return cal.to_meta(calib, negatives), thresholds, metrics
