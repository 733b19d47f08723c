"""Process-wide settings, from `ADAPTER_*` environment variables (and the runner's own names).

Only the entrypoint (`adapter.main`) reads the environment; everything else is handed a
`Settings`, so tests build one directly.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapter import __version__
from adapter.jobs.settings import JobsSettings, default_data_dir
from contract.aimodels import ModelEntry, RunnerSettings
from contract.optimization_flags import CompileMode
from contract.pipelines import Pipeline

MIB = 1024 * 1024
DEMO_MODEL_ID = "demo/tiny-sd"
DEMO_WHISPER_ID = "demo/tiny-whisper"
DEMO_LLM_ID = "demo/tiny-llm"
DEMO_SAM2_ID = "demo/tiny-sam2"
DEMO_BLIP_ID = "demo/tiny-blip"
DEMO_VITS_ID = "demo/tiny-vits"
DEMO_VIDEO_ID = "demo/tiny-wan"


class Limits(BaseSettings):
    """Limits that bound the cost of one request; each breaks with a 400 (413 for the body)."""

    model_config = SettingsConfigDict(env_prefix="ADAPTER_")

    max_pixels_per_image: int = Field(
        1024 * 1024, gt=0, description="Largest width x height of one generated image."
    )
    max_images_per_request: int = Field(
        4, gt=0, description="Most images one request may ask for (num_images_per_prompt)."
    )
    max_inference_steps: int = Field(100, gt=0, description="Most denoising steps per request.")
    max_json_request_bytes: int = Field(
        1 * MIB,
        gt=0,
        description="Largest JSON request body (text-to-image, llm, ...), parsed whole (413).",
    )
    max_request_bytes: int = Field(
        50 * MIB, gt=0, description="Largest request body, uploads included (413 beyond)."
    )
    max_audio_bytes: int = Field(
        50 * MIB, gt=0, description="Largest audio file for audio-to-text (413 beyond)."
    )
    max_audio_seconds: float = Field(
        3600.0, gt=0, description="Longest audio, in seconds, that audio-to-text transcribes."
    )
    max_llm_tokens: int = Field(
        4096, gt=0, description="Largest max_tokens (tokens generated) of one LLM request."
    )
    max_llm_prompt_tokens: int = Field(
        8192, gt=0, description="Longest LLM prompt in tokens, chat template included."
    )
    max_input_pixels: int = Field(
        4096 * 4096,
        gt=0,
        description="Most pixels an uploaded image may declare; checked from its header, "
        "before decoding (Pillow refuses over 178956970 whatever this says).",
    )
    max_upscale_input_pixels: int = Field(
        512 * 512,
        gt=0,
        description="Most pixels of an image sent to /upscale (the output has 16 times as many).",
    )
    max_video_frames: int = Field(
        81,
        gt=0,
        description="Most frames of one video: a text-to-video request's num_frames, and the "
        "frames an image-to-video model makes (a model over it does not load).",
    )
    # segment-anything-2: its answer holds 3 x width x height numbers as text (about 66 MB of
    # JSON at 1024x1024 with return_logits), and each point is a token of its mask decoder.
    max_segment_input_pixels: int = Field(
        1024 * 1024,
        gt=0,
        description="Most pixels of an image sent to /segment-anything-2 (the answer's masks "
        "have its size, as text).",
    )
    max_segment_points: int = Field(
        64, gt=0, description="Most point prompts (point_coords) of one segment-anything-2 request."
    )
    max_caption_tokens: int = Field(
        40, gt=0, description="Most tokens an image-to-text caption adds after its prompt."
    )
    max_tts_chars: int = Field(
        1000, gt=0, description="Longest text-to-speech text, in characters (code points)."
    )


class LiveRunnerSettings(BaseSettings):
    """go-livepeer's Live Runner door (adapter/live_runner/, docs/live-runner.md); off unless
    ADAPTER_LIVE_RUNNER_PORT or ADAPTER_LIVE_RUNNER_SERVE_ON_MAIN is set."""

    model_config = SettingsConfigDict(env_prefix="ADAPTER_LIVE_RUNNER_", populate_by_name=True)

    port: int = Field(
        0, ge=0, le=65535, description="Port of the door's own listener; 0: no own listener."
    )
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address the door's own listener binds. A non-loopback one needs "
        "ADAPTER_LIVE_RUNNER_PATH_SECRET or ADAPTER_LIVE_RUNNER_ALLOW_UNAUTHENTICATED=true.",
    )
    serve_on_main: bool = Field(
        False,
        description="Also serve the door on the adapter's own port under /live-runner (the "
        "one port of an adapter deployed on Modal); needs a path secret or the explicit "
        "ADAPTER_LIVE_RUNNER_ALLOW_UNAUTHENTICATED=true.",
    )
    path_secret: SecretStr = Field(
        SecretStr(""),
        description="A secret first path segment of every door URL (at least 16 characters, "
        "URL-safe): go-livepeer sends no Authorization header, so this is what keeps the door "
        "closed to anyone who can reach its address but was not given runners.json.",
    )
    allow_unauthenticated: bool = Field(
        False,
        description="Serve the door on a non-loopback address without a path secret (the "
        "network in between is private, or something in front authenticates).",
    )
    public_url: str = Field(
        "",
        validation_alias=AliasChoices("ADAPTER_PUBLIC_URL", "ADAPTER_LIVE_RUNNER_PUBLIC_URL"),
        pattern=r"^(https?://[^/?#]+(/[^?#]*)?)?$",
        description="The door's address as the orchestrator reaches it (ADAPTER_PUBLIC_URL), "
        "e.g. http://adapter:8935; default http://<host>:<port> of the own listener.",
    )
    label_prefix: str = Field(
        "",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Prefix of every registration label (several adapters, one orchestrator).",
    )
    price_unit: Literal["fixed", "hour"] = Field(
        "fixed",
        description="Live Runner price unit: 'fixed' USD per request (the pipeline's default "
        "request) or USD per 'hour' of session (needs a measurement).",
    )
    price_margin: Decimal = Field(
        Decimal("0.25"), ge=0, description="Markup over the Modal cost (0.25 = 25 %)."
    )
    results: Path | None = Field(
        None,
        description="Measured seconds per job (`python -m pricing calibrate`, the bench) that "
        "prices are computed from; without one, each entry's USD price_per_unit is used.",
    )
    jobs_per_hour: Decimal | None = Field(
        None, gt=0, description="Expected load, to share a warm pool's cost among jobs."
    )
    orchestrator_url: str = Field(
        "",
        pattern=r"^(https?://[^/?#]+/?)?$",
        description="Dynamic registration: the orchestrator that runners heartbeat to "
        "(its -liveRunnerAddr or service address); empty: no heartbeats.",
    )
    orch_secret: SecretStr = Field(
        SecretStr(""), description="Dynamic registration: the orchestrator's -orchSecret."
    )
    heartbeat_timeout_s: float = Field(
        5.0, gt=0, description="Longest wait for one heartbeat answer."
    )
    heartbeat_max_backoff_s: float = Field(
        60.0, gt=0, description="Longest pause between heartbeats while the orchestrator fails."
    )

    @property
    def enabled(self) -> bool:
        return self.port != 0 or self.serve_on_main


class WorkerbeeSettings(BaseSettings):
    """The workerbee worker (adapter/workerbee/): joins a dispatcher's rotation over a WebSocket
    and answers its OpenAI-format requests through the service. Off unless `url` is set."""

    model_config = SettingsConfigDict(env_prefix="ADAPTER_WORKERBEE_")

    url: str = Field(
        "",
        pattern=r"^(wss?://\S+)?$",
        description="The dispatcher's worker WebSocket (e.g. wss://queenbee.gputopia.ai/worker); "
        "empty: no worker.",
    )
    ln_address: str = Field(
        "", description="Lightning address the dispatcher pays (sent as ln_address and ln_url)."
    )
    auth_key: str = Field("", description="The account key the dispatcher knows this worker by.")
    private_key: str = Field(
        "",
        description="URL-safe base64 of a 32-byte secp256k1 secret: the registration is signed "
        "with it (BIP-340 Schnorr over the SHA-256 of its sorted compact JSON) and its x-only "
        "public key sent as pubkey. Empty: unsigned.",
    )
    slug: str = Field("", description="Sent as `slug` (dispatchers filter workers by it).")
    capabilities: str = Field(
        "",
        description="Comma-separated capabilities to advertise; default: what the served models "
        "imply (llama-infer for an LLM, sdxl for a text-to-image model).",
    )
    models: str = Field(
        "",
        description="Comma-separated model names to advertise; default: the served LLM and "
        "text-to-image model ids.",
    )
    any_model: bool = Field(
        False,
        description="Answer a request naming a model not served here with the pipeline's default "
        "model (the reply names the model that answered) instead of refusing it. Dispatchers "
        "route by model size, not by the models a worker lists.",
    )
    ping_interval_s: float = Field(10.0, gt=0, description="WebSocket ping every this often.")
    ping_timeout_s: float = Field(
        60.0, gt=0, description="Reconnect when a ping has no pong within this long."
    )
    backoff_initial_s: float = Field(
        1.0, gt=0, description="First wait before reconnecting (doubled on each failure)."
    )
    backoff_max_s: float = Field(
        60.0, gt=0, description="Longest wait between reconnection attempts (jitter included)."
    )
    disk_path: Path | None = Field(
        None,
        description="Where the free disk reported as disk_space is measured; default: the "
        "model folder (MODEL_DIR), or its nearest existing parent.",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADAPTER_")

    models_config: Path | None = Field(
        None,
        description="Path of the aiModels.json to serve; without one, the built-in demo model.",
    )
    auth_token: str = Field(
        "",
        validation_alias=AliasChoices("ADAPTER_AUTH_TOKEN", "AUTH_TOKEN"),
        description="Bearer token accepted on every model, besides each entry's own `token`.",
    )
    runner_version: str = Field(
        __version__,
        validation_alias=AliasChoices("ADAPTER_RUNNER_VERSION", "VERSION"),
        pattern=r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$",
        description="The semver /version reports (the runner's VERSION variable works too). "
        "Gateways with a minimum runner version compare it: set it to the Livepeer runner "
        "release whose contract this adapter serves (0.14.1) if a gateway asks for one.",
    )
    model_dir: Path = Field(
        Path.home() / ".lpData" / "models",
        validation_alias=AliasChoices("ADAPTER_MODEL_DIR", "MODEL_DIR"),
        description="Hugging Face cache folder that model ids are looked up in (offline).",
    )
    demo_dir: Path = Field(
        Path.home() / ".cache" / "modal-ai-runner" / "demo",
        description="Where the built-in demo models are created on first start.",
    )
    upstream_poll_interval_s: float = Field(
        2.0, gt=0, description="With the http backend: how often each upstream's /health is read."
    )
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:[0-9]+)?)$")
    queue_timeout_s: float = Field(
        120.0, gt=0, description="Longest wait for a free slot before answering 503."
    )
    model_load_wait_s: float = Field(
        600.0,
        gt=0,
        description="Longest a request waits, holding its slot, for its model to finish loading.",
    )
    max_load_attempts: int = Field(
        3,
        ge=1,
        description="Loads of one model tried before it stays FAILED (/health ERROR) until "
        "the process restarts; on Modal, a failed container stays up answering 500 and lowers "
        "its class's warm pool to 0, and past this many failed loads over all its containers "
        "the warm schedule keeps the class cold, instead of crash-looping billed GPUs.",
    )
    declared_statuses_only: bool = Field(
        True,
        description="Answer on the runner's routes only the statuses the spec declares for "
        "each: a 503 (overload, an unreachable backend) becomes a 500 and an undeclared 413 a "
        "400, same body, Retry-After kept; a refusal for load says `insufficient capacity`, so "
        "go-livepeer's gateway tries another orchestrator. go-livepeer decodes only declared "
        "statuses. Turn it off only for a front end that understands 503 and 413.",
    )
    retry_after_s: int = Field(
        2, ge=0, description="Retry-After sent with a refusal for load or an outage."
    )
    compile_backend: Literal["inductor", "eager"] = Field(
        "inductor",
        description="torch.compile backend for SFAST: `inductor` generates fast kernels; "
        "`eager` only captures graphs (no speed-up; to check quickly that a model traces).",
    )
    compile_mode: CompileMode = Field(
        "default",
        description="torch.compile mode (inductor's) for models with the SFAST (or "
        "TORCH_COMPILE) flag; see docs/optimization-flags.md.",
    )
    compile_cache_dir: Path | None = Field(
        None,
        description="Where compiled kernels are kept (TorchInductor's cache, Triton's beneath "
        "it); a persistent disk spares later starts the compiling. Default: "
        "TORCHINDUCTOR_CACHE_DIR, else torch's own (/tmp/torchinductor_<user>).",
    )
    limits: Limits = Field(default_factory=Limits)
    live_runner: LiveRunnerSettings = Field(default_factory=LiveRunnerSettings)
    backend: Literal["local", "modal", "http"] = Field(
        "local",
        description="Where requests run: 'local' (this process), 'modal' (the GPU classes of "
        "the Modal app `modal_app`, deployed with `modal deploy modal_app.py`) or 'http' "
        "(forwarded to each model's runner.upstream_url).",
    )
    modal_app: str = Field(
        "livepeer-ai-runner",
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="Name of the Modal app: the one `modal deploy` creates and the Modal "
        "backend calls.",
    )
    modal_connect_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for Modal to accept a call before answering 503."
    )
    shutdown_drain_s: float = Field(
        25.0,
        ge=0,
        description="On SIGTERM, how long requests in flight may run on; those still running "
        "are then stopped and answered 500, and the process exits (`python -m adapter`; "
        "plain uvicorn takes --timeout-graceful-shutdown). Keep it under the platform's "
        "own kill delay: docker stop 10 s, Kubernetes and Modal 30 s.",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Longest a client may take to send a request's headers, counted from "
        "its connection (or from the first byte after its previous answer); then 400 and the "
        "connection is closed. `python -m adapter` applies it; plain uvicorn only with "
        "`--http adapter.web.timeouts:HeaderTimeoutH11Protocol`.",
    )
    body_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Longest a client may take to send a request's body, counted from the "
        "end of its headers; then 400 and the connection is closed.",
    )
    debug: bool = Field(
        False,
        description="Print the whole traceback of a start-up error (otherwise one line).",
    )
    workerbee: WorkerbeeSettings = Field(default_factory=WorkerbeeSettings)
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where durable state is kept by default: the jobs database and outputs.",
    )
    jobs: JobsSettings = Field(default_factory=JobsSettings)


def demo_entries(settings: Settings) -> list[ModelEntry]:
    """The built-in configuration: one tiny random-weight model per pipeline, built locally.

    Two steps (forced by `runner.num_inference_steps`) keep each answer, at the contract's
    default sizes, to a few seconds on a laptop CPU.
    """

    def demo(pipeline: Pipeline, model_id: str, folder: str, steps: int | None = 2) -> ModelEntry:
        return ModelEntry(
            pipeline=pipeline,
            model_id=model_id,
            warm=True,
            capacity=1,
            runner=RunnerSettings(
                default=True,
                demo=True,
                model_path=str(settings.demo_dir / folder),
                num_inference_steps=steps,
            ),
        )

    return [
        demo(Pipeline.TEXT_TO_IMAGE, DEMO_MODEL_ID, "tiny-sd"),
        # A text-to-image folder serves image-to-image too (diffusers' img2img of the same model).
        demo(Pipeline.IMAGE_TO_IMAGE, "demo/tiny-sd-img2img", "tiny-sd"),
        demo(Pipeline.IMAGE_TO_VIDEO, "demo/tiny-svd", "tiny-svd"),
        demo(Pipeline.UPSCALE, "demo/tiny-sd-x4-upscaler", "tiny-sd-x4-upscaler"),
        demo(Pipeline.AUDIO_TO_TEXT, DEMO_WHISPER_ID, "tiny-whisper", steps=None),
        demo(Pipeline.LLM, DEMO_LLM_ID, "tiny-llm", steps=None),
        demo(Pipeline.SEGMENT_ANYTHING_2, DEMO_SAM2_ID, "tiny-sam2", steps=None),
        demo(Pipeline.IMAGE_TO_TEXT, DEMO_BLIP_ID, "tiny-blip", steps=None),
        demo(Pipeline.TEXT_TO_SPEECH, DEMO_VITS_ID, "tiny-vits", steps=None),
        demo(Pipeline.TEXT_TO_VIDEO, DEMO_VIDEO_ID, "tiny-wan"),
    ]
