"""Settings: one object, built once, from defaults < `appliance.toml` in the home < environment
(`APPLIANCE_<NAME>`) < explicit overrides (CLI flags, `connect(**overrides)`).

Every field carries its help text in `metadata["help"]`; `appliance settings` prints them and a
test fails when one is missing.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput

ENV_PREFIX = "APPLIANCE_"
CONFIG_FILE = "appliance.toml"


def default_home() -> Path:
    """The platform's per-user data folder, e.g. ~/.local/share/appliance on Linux."""
    from platformdirs import user_data_path

    return user_data_path("appliance", appauthor=False)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class Settings:
    home: Path = field(
        default_factory=default_home,
        metadata=_help(
            "Folder holding the registry (registry.db), artifacts, model versions and logs. "
            "Set with APPLIANCE_HOME or --home; it cannot be set in appliance.toml, which lives "
            "inside it."
        ),
    )
    host: str = field(
        default="127.0.0.1",
        metadata=_help(
            "Address the HTTP server listens on. Beyond loopback every request but the health "
            "probes needs a token (`token`, or a user's from `appliance user add`)."
        ),
    )
    port: int = field(
        default=8765,
        metadata=_help(
            "TCP port the HTTP server listens on (0: any free one). The CLI does not read it to "
            "find a running server: it reads the address the server records in the home."
        ),
    )
    token: str = field(
        default="",
        metadata=_help(
            "The server's admin token (`Authorization: Bearer <token>`): when set, every request "
            "but the health probes needs a token, this one or a user's. Prefer token_file or "
            "APPLIANCE_TOKEN to the command line."
        ),
    )
    token_file: str = field(
        default="",
        metadata=_help(
            "A file holding the token (its first line), read at start when `token` is not set: "
            "keeps the secret out of the environment and out of argv, where `ps` shows it to "
            "every local user."
        ),
    )
    allowed_hosts: str = field(
        default="",
        metadata=_help(
            "Comma-separated host names the server answers to (the Host header), besides the "
            "loopback names while it listens on loopback; empty beyond loopback accepts any. "
            "Refuses DNS-rebinding pages."
        ),
    )
    allowed_origins: str = field(
        default="",
        metadata=_help(
            "Comma-separated web origins (e.g. http://laptop:3000) whose pages may write; "
            "writes from any other page's origin are refused (403)."
        ),
    )
    web_port: int = field(
        default=8766,
        metadata=_help(
            "TCP port `appliance web` (the terminal UI in a browser) listens on, at the `host` "
            "address."
        ),
    )
    web_session_minutes: int = field(
        default=720,
        metadata=_help(
            "How long a browser's login to `appliance web` lasts (its cookie and the server's "
            "record of it); a terminal still open then is closed."
        ),
    )
    max_body_bytes: int = field(
        default=10_000_000,
        metadata=_help("Largest HTTP request body accepted; larger bodies get 413."),
    )
    upload_max_bytes: int = field(
        default=8_000_000_000,
        metadata=_help(
            "Largest folder sent over HTTP (a dataset or a model version as a tar, or a run "
            "artifact), as sent and as unpacked; larger ones get 413. It is streamed to the "
            "home's tmp/ folder, so it needs that much free disk, not memory."
        ),
    )
    max_connections: int = field(
        default=512,
        metadata=_help(
            "Open HTTP connections the server accepts; one more is answered 503 and closed, "
            "and refusals are logged. Keep it well below the process's file limit "
            "(LimitNOFILE in the systemd unit)."
        ),
    )
    http_header_timeout_s: float = field(
        default=10.0,
        metadata=_help(
            "Seconds a client has to send a request's head (request line and headers) after "
            "connecting or after the previous answer; slower clients get 408."
        ),
    )
    http_max_header_bytes: int = field(
        default=32_768,
        metadata=_help("Largest request head (request line and headers) accepted; 431 beyond."),
    )
    http_max_headers: int = field(
        default=100,
        metadata=_help("Most header lines in one request; 431 beyond."),
    )
    max_image_pixels: int = field(
        default=40_000_000,
        metadata=_help(
            "Largest image (width × height) decoded anywhere; bigger images are refused as "
            "possible decompression bombs."
        ),
    )
    image_max_side: int = field(
        default=2048,
        metadata=_help(
            "Longest side, in pixels, an uploaded image is decoded to: a larger one is scaled "
            "down as it is decoded (aspect kept; a JPEG by its decoder and an 8-bit PNG a strip "
            "of rows at a time, so their full-size pixels never sit in memory; other formats "
            "whole, within decode_memory_mb). 2048 is above every supported model's input; "
            "the features still report the original width and height. 0: full size."
        ),
    )
    decode_memory_mb: int = field(
        default=256,
        metadata=_help(
            "Memory, in MB, that image decodes may hold at once across the process (their "
            "estimated pixel buffers): concurrent decodes of large images wait their turn, "
            "and an image that alone needs more (a huge WebP, TIFF or interlaced PNG) is "
            "refused with 413. 0: no limit."
        ),
    )
    busy_timeout_ms: int = field(
        default=15_000,
        metadata=_help(
            "How long a SQLite write waits for another process's write lock before failing."
        ),
    )
    name_max_length: int = field(
        default=64,
        metadata=_help("Longest name allowed for workspaces, datasets, models and endpoints."),
    )

    require_auth: bool = field(
        default=False,
        metadata=_help(
            "Require a token on every request but the health probes also on loopback (beyond "
            "loopback, or with `token` set, it is always required). The CLI and the TUI of "
            "the home's owner send the home's local key (the `local.key` file) by themselves."
        ),
    )
    predict_rate_limit: float = field(
        default=0.0,
        metadata=_help(
            "Predict requests per second allowed to each token (bursts of as many), the "
            "excess answered 429 with Retry-After; 0: no limit."
        ),
    )
    low_light_brightness: int = field(
        default=110,
        metadata=_help(
            "A photo whose brightest pixels (99th percentile of luminance, 0-255) stay below this "
            "counts as dark for the low_light warning."
        ),
    )
    low_light_confidence: float = field(
        default=0.9,
        metadata=_help(
            "The uncertain threshold of a model version without calibration (registered without "
            "held-out rows, or before calibration): an answer whose confidence is below it warns "
            "uncertain, and low_light too when the photo is dark."
        ),
    )
    uncertain_confidence: float = field(
        default=0.0,
        metadata=_help(
            "Warn uncertain below this calibrated confidence on every version, instead of each "
            "version's own threshold (chosen at evaluation for uncertain_target_recall); 0 keeps "
            "each version's own."
        ),
    )
    uncertain_target_recall: float = field(
        default=0.7,
        metadata=_help(
            "At evaluation, a version's uncertain threshold is the lowest that warns on this "
            "share of its wrong answers on the held-out rows (it applies to versions evaluated "
            "after a change)."
        ),
    )

    torch_threads: int = field(
        default=0,
        metadata=_help(
            "Intra-op threads torch uses for inference, set once by the first model this "
            "process loads; 0 keeps torch's default (one per physical core). Each deployment "
            "records the count it runs with."
        ),
    )
    memory_budget_mb: int = field(
        default=0,
        metadata=_help(
            "RAM (MB) the served models may take together; 0: 75% of this machine's RAM. A "
            "deploy that does not fit, with the version it replaces still held until the swap, "
            "first unloads idle other endpoints (least recently used first), else is refused "
            "(507) with the figures before anything is unloaded."
        ),
    )
    gpu_memory_budget_mb: int = field(
        default=0,
        metadata=_help(
            "GPU memory (MB) the models served on CUDA may take together; 0: 90% of the GPU's "
            "memory (from torch.cuda.mem_get_info). Applies only to models deployed on CUDA."
        ),
    )

    capture_enabled: bool = field(
        default=True,
        metadata=_help(
            "Record every prediction (features, output, latency split) for monitoring and feedback."
        ),
    )
    capture_queue_size: int = field(
        default=10_000,
        metadata=_help(
            "Predictions waiting to be written; when full, captures are dropped (and counted), "
            "never requests."
        ),
    )
    capture_min_free_mb: int = field(
        default=100,
        metadata=_help(
            "Capture pauses (and counts what it skips) while the disk holding the home has "
            "less than this many MB free, so feedback and deployments keep room to be stored."
        ),
    )
    capture_thumbnail_rate: float = field(
        default=0.1,
        metadata=_help(
            "Fraction of predictions whose input is kept as a small re-encoded thumbnail "
            "(metadata stripped); 0 keeps none."
        ),
    )
    capture_thumbnail_size: int = field(
        default=64, metadata=_help("Longest side, in pixels, of a kept input thumbnail.")
    )
    capture_retention_days: int = field(
        default=30, metadata=_help("Captured predictions older than this are deleted.")
    )
    capture_max_rows: int = field(
        default=1_000_000,
        metadata=_help("At most this many captured predictions are kept (the oldest go first)."),
    )
    review_max_bytes: int = field(
        default=200_000_000,
        metadata=_help(
            "Disk budget, in bytes, of the inputs kept for review (uncertain or low-rated "
            "answers); past it the oldest pending items go first (counted). 0 keeps none."
        ),
    )
    review_recent_inputs: int = field(
        default=500,
        metadata=_help(
            "How many recent decoded inputs the server holds in memory, so that a low rating "
            "arriving soon after can still queue its input for review; 0 holds none."
        ),
    )
    review_recent_max_bytes: int = field(
        default=256_000_000,
        metadata=_help(
            "Memory cap, in bytes of pixels or text, of those recent inputs (the oldest are "
            "let go first)."
        ),
    )
    review_low_rating: int = field(
        default=2,
        metadata=_help(
            "A rating at or below this (or a thumb down) queues the prediction for review, when "
            "its input is still held (review_recent_inputs)."
        ),
    )
    gc_grace_seconds: int = field(
        default=3600,
        metadata=_help(
            "`appliance gc` (and a delete) leaves an unreferenced file alone until it is this "
            "old: a file is written before the row that names it, so a younger one may be an "
            "upload still on its way. Keep it above your longest upload or registration."
        ),
    )
    monitor_interval_s: int = field(
        default=30,
        metadata=_help(
            "How often, in seconds, the server samples system metrics and evaluates alert rules."
        ),
    )
    monitor_sample_rows: int = field(
        default=10_000,
        metadata=_help(
            "The most recent predictions per endpoint that each periodic alert evaluation reads "
            "(older traffic in the window is left out, so an evaluation costs the same at any "
            "request rate)."
        ),
    )
    system_metrics_max_rows: int = field(
        default=10_080,
        metadata=_help("System metric samples kept (the oldest go first)."),
    )
    drift_window_s: int = field(
        default=3600,
        metadata=_help(
            "Recent traffic, in seconds, that drift and the alert rules look at by default."
        ),
    )
    drift_min_samples: int = field(
        default=30,
        metadata=_help("Fewest recent predictions before a feature can be called drifted."),
    )
    drift_psi_threshold: float = field(
        default=0.25,
        metadata=_help(
            "Population stability index at or above which a feature has drifted "
            "(0.1 is a small shift, 0.25 a large one)."
        ),
    )
    drift_ks_threshold: float = field(
        default=0.3,
        metadata=_help("Kolmogorov-Smirnov distance at or above which a feature has drifted."),
    )
    alert_p95_latency_ms: float = field(
        default=1000.0, metadata=_help("Alert when an endpoint's p95 latency exceeds this.")
    )
    alert_error_rate: float = field(
        default=0.05,
        metadata=_help("Alert when more than this fraction of an endpoint's predictions fail."),
    )
    alert_min_rating: float = field(
        default=3.0, metadata=_help("Alert when the mean user rating (1-5) falls below this.")
    )
    alert_low_light_rate: float = field(
        default=0.3,
        metadata=_help("Alert when more than this fraction of predictions warn low_light."),
    )
    alert_min_free_disk_mb: float = field(
        default=500,
        metadata=_help(
            "The disk_free_mb alert fires while the disk holding the home has less than this "
            "many MB free (capture pauses lower, at capture_min_free_mb)."
        ),
    )
    alert_quality_drop: float = field(
        default=0.1,
        metadata=_help(
            "Alert when the label-free quality estimate (the mean calibrated confidence of "
            "recent predictions) is more than this below the deployed version's held-out score."
        ),
    )
    embedding_drift_alpha: float = field(
        default=0.01,
        metadata=_help(
            "Alert when the two-sample test of recent embeddings against the deployed "
            "version's training embeddings gives a p-value below this (about this share of "
            "windows without drift are flagged by chance)."
        ),
    )

    register_check_timeout_s: int = field(
        default=600,
        metadata=_help(
            "Registering a model folder loads it and answers one input in a child process "
            "first; the check fails a folder that takes longer than this many seconds."
        ),
    )

    job_misfire_grace_s: int = field(
        default=3600,
        metadata=_help(
            "A scheduled job missed (the appliance was down or busy) still runs once if no more "
            "than this many seconds late."
        ),
    )

    cost_cpu_hour: float = field(
        default=0.05,
        metadata=_help(
            "Price of one CPU core for an hour, in your currency, for the platform report's cost "
            "per user (the default is about an on-demand cloud vCPU)."
        ),
    )
    cost_gpu_hour: float = field(
        default=2.5,
        metadata=_help(
            "Price of one GPU for an hour, for the platform report's cost per user (the default "
            "is about an on-demand cloud data-centre GPU)."
        ),
    )
    cost_gb_month: float = field(
        default=0.1,
        metadata=_help(
            "Price of keeping 1 GB (10^9 bytes) on disk for a month (30 days), for the platform "
            "report's cost per user (the default is about cloud block storage)."
        ),
    )

    @property
    def registry_path(self) -> Path:
        return self.home / "registry.db"

    @classmethod
    def load(
        cls,
        home: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Resolve every source in order; unknown keys and unparsable values raise InvalidInput."""
        env = os.environ if environ is None else environ
        home_value = home or env.get(f"{ENV_PREFIX}HOME")
        resolved_home = Path(home_value).expanduser() if home_value else default_home()
        values: dict[str, Any] = {"home": resolved_home.absolute()}

        config = resolved_home / CONFIG_FILE
        for key, raw in _read_toml(config).items():
            if key == "home":
                raise InvalidInput(
                    f"{config}: 'home' cannot be set inside the home; use APPLIANCE_HOME"
                )
            values[key] = _coerce(key, raw, f"{config}")
        for name in _field_names():
            env_key = f"{ENV_PREFIX}{name.upper()}"
            if name != "home" and env_key in env:
                values[name] = _coerce(name, env[env_key], env_key)
        for key, raw in overrides.items():
            if raw is not None:
                values[key] = _coerce(key, raw, f"option {key}")
        if values.get("token_file") and not values.get("token"):
            values["token"] = _read_token(Path(values["token_file"]).expanduser())
        return cls(**values)

    @classmethod
    def describe(cls) -> list[dict[str, str]]:
        """Name, type, default, environment variable and help for each setting."""
        rows = []
        for f in dataclasses.fields(cls):
            default = "platform user data folder" if f.name == "home" else repr(f.default)
            rows.append(
                {
                    "name": f.name,
                    "type": _type_of(f.name).__name__,
                    "default": default,
                    "env": f"{ENV_PREFIX}{f.name.upper()}",
                    "help": f.metadata.get("help", ""),
                }
            )
        return rows


def _field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings)]


def _type_of(name: str) -> type:
    if name == "home":
        return Path
    return type(next(f.default for f in dataclasses.fields(Settings) if f.name == name))


def _coerce(name: str, raw: Any, source: str) -> Any:
    if name not in _field_names():
        known = ", ".join(_field_names())
        raise InvalidInput(f"{source}: unknown setting '{name}' (known: {known})")
    kind = _type_of(name)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return text in ("1", "true", "yes", "on")
        raise InvalidInput(f"{source}: {name} must be true or false, got {raw!r}")
    if kind is float:
        if isinstance(raw, bool):
            raise InvalidInput(f"{source}: {name} must be a number, got {raw!r}")
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise InvalidInput(f"{source}: {name} must be a number, got {raw!r}") from None
    if kind is int:
        if isinstance(raw, bool):
            raise InvalidInput(f"{source}: {name} must be an integer, got {raw!r}")
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise InvalidInput(f"{source}: {name} must be an integer, got {raw!r}") from None
        if value < 0:
            raise InvalidInput(f"{source}: {name} must not be negative, got {value}")
        return value
    if kind is Path:
        return Path(str(raw)).expanduser().absolute()
    if not isinstance(raw, str):
        raise InvalidInput(f"{source}: {name} must be a string, got {raw!r}")
    return raw


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML ({exc})") from None


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().splitlines()[0].strip() if path.stat().st_size else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"token_file {path} cannot be read ({exc})") from None
    if not token:
        raise InvalidInput(f"token_file {path} is empty: write the token on its first line")
    return token
