"""Model profiles: what a released model needs besides its weights to be run as its authors ran it.

``--model DeepICD-R1-7B`` (or ``DeepICD-R1-zero-32B``) resolves to a :class:`ModelProfile`: the hub id, the prompt
the model was trained with (a file of the authors' repository, pinned by commit and sha256), its prefill, the form of
the codes it answers with (undotted, MIMIC style) and its decoding defaults (the evaluation preset).

The prompt is not shipped with icdreason: :meth:`ModelProfile.template` obtains it from its source on first use (the
raw file at the pinned commit, over HTTPS with a total deadline), checks its sha256 and caches it under the icdreason
home (``$ICDREASON_HOME/prompts/<repo>/<commit>/<path>``). Offline, or when the file does not match the pinned hash,
it raises a one-line :class:`~icdreason.errors.EngineError` that names ``--prompt-template FILE``.

``ICDREASON_PROMPT_BASE_URL`` replaces ``https://raw.githubusercontent.com`` (a mirror, or a test server); the file is
fetched from ``<base>/<repo>/<commit>/<path>``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import EngineError
from .resolve import expand_alias

__all__ = ["AUTHORS_COMMIT", "AUTHORS_REPO", "PROFILES", "PROMPT_BASE_URL_ENV", "ModelProfile", "PromptSource",
           "find_profile"]

#: The authors' repository and the commit every pinned file comes from.
AUTHORS_REPO = "DATEXIS/DeepICD-R1"
AUTHORS_COMMIT = "80f64850ee6c9adeae1bced4f01912e3b195f026"
#: Environment variable that replaces the raw-file host.
PROMPT_BASE_URL_ENV = "ICDREASON_PROMPT_BASE_URL"
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
#: Seconds one download may take in all (connect, headers, body).
DOWNLOAD_DEADLINE = 30.0
#: A prompt file is small; anything larger is not the file.
MAX_PROMPT_BYTES = 1_000_000


@dataclass(frozen=True)
class PromptSource:
    """A prompt file in a repository, pinned by commit and by the sha256 of its bytes."""

    path: str
    sha256: str
    repo: str = AUTHORS_REPO
    commit: str = AUTHORS_COMMIT

    def url(self, base_url: str | None = None) -> str:
        """Where the raw file is: ``<base>/<repo>/<commit>/<path>``."""
        base = (base_url or os.environ.get(PROMPT_BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        return f"{base}/{self.repo}/{self.commit}/{self.path}"

    @property
    def label(self) -> str:
        """How runs record it: ``DATEXIS/DeepICD-R1@80f6485:src/prompts/….csv``."""
        return f"{self.repo}@{self.commit[:7]}:{self.path}"

    def cache_path(self, home: Path | None = None) -> Path:
        """Where the verified copy is kept under the icdreason home."""
        from ..config import home_dir

        return (home or home_dir()) / "prompts" / self.repo / self.commit / self.path


@dataclass(frozen=True)
class ModelProfile:
    """A released model: its hub id, training prompt, prefill, answer form and decoding defaults."""

    name: str
    hub_id: str
    prompt: PromptSource
    prefill: str
    answer_form: str  # "undotted" (I214, MIMIC style) or "dotted" (I21.4)
    eval_preset: str  # the predict preset that decodes as the authors' evaluation did
    decoding: dict[str, Any] = field(default_factory=dict)  # SamplingParams defaults of the profile
    notes: tuple[str, ...] = ()

    def template(self, *, prefill: str | None = None, home: Path | None = None, base_url: str | None = None,
                 timeout: float = DOWNLOAD_DEADLINE):
        """The model's prompt as a :class:`~icdreason.prompts.PromptTemplate` (downloaded and verified on first
        use, then read from the cache). ``prefill`` overrides the profile's. Raises :class:`EngineError` (one line,
        naming ``--prompt-template FILE``) when the file cannot be had or does not match its pinned sha256."""
        from ..prompts import template_from_text

        raw = self.prompt_bytes(home=home, base_url=base_url, timeout=timeout)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # cannot happen for bytes matching the pin; kept for a wrong pin in code
            raise EngineError(f"the prompt of {self.name} ({self.prompt.label}) is not UTF-8 text: "
                              f"pass --prompt-template FILE") from None
        template = template_from_text(text, f"{self.name} prompt ({self.prompt.label})",
                                      source=self.prompt.url(base_url), sha256=self.prompt.sha256,
                                      csv=self.prompt.path.endswith(".csv"))
        return replace(template, prefill=self.prefill if prefill is None else prefill)

    def prompt_bytes(self, *, home: Path | None = None, base_url: str | None = None,
                     timeout: float = DOWNLOAD_DEADLINE) -> bytes:
        """The prompt file's bytes: the cached copy when it matches the pin, else downloaded, verified and cached."""
        cached = self.prompt.cache_path(home)
        if cached.is_file():
            raw = cached.read_bytes()
            if _sha256(raw) == self.prompt.sha256:
                return raw
        raw = _download(self.prompt.url(base_url), timeout=timeout, what=f"the prompt {self.name} was trained with")
        digest = _sha256(raw)
        if digest != self.prompt.sha256:
            raise EngineError(
                f"the prompt of {self.name} from {self.prompt.url(base_url)} has sha256 {digest[:12]}…, not the "
                f"pinned {self.prompt.sha256[:12]}… ({self.prompt.label}): not using it; pass --prompt-template FILE "
                "with the authors' CSV")
        _write_atomic(cached, raw)
        return raw


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(url: str, *, timeout: float, what: str) -> bytes:
    import httpx

    from ..http_deadline import deadline, deadline_transport

    fix = "pass --prompt-template FILE (the authors' CSV, or deepicd_r1 for icdreason's own prompt)"
    try:
        with httpx.Client(transport=deadline_transport(), timeout=timeout, follow_redirects=True) as client, \
                deadline(timeout):
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise EngineError(f"cannot download {what} from {url} (HTTP {response.status_code}): {fix}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_PROMPT_BYTES:
                        raise EngineError(f"{url} sent more than {MAX_PROMPT_BYTES:,} bytes: not a prompt file; {fix}")
                return bytes(body)
    except httpx.HTTPError as exc:
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise EngineError(f"cannot download {what} from {url} ({type(exc).__name__}: {reason}; offline?): "
                          f"{fix}") from None


def _write_atomic(path: Path, data: bytes) -> None:
    """Cache the file; a cache that cannot be written only costs a download next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError:
        pass


_SINGLE_CODE_PROMPT = PromptSource(
    path="src/prompts/prospective_single_icd_coding.csv",
    sha256="ec8cff55dfefa29f0c053ee6002df27045ed7ff9cd525eefbf124cbeccba273d",
)
_NOTES = (
    "GRPO data of both released jobs (k8s/train/grpo_train_job_7b.yaml, grpo_train_job_32b.yaml) is "
    "*_prospective_single_icd_coding.parquet, built from this prompt with the assistant row <think> as the prefill",
    "the model answers with codes without dots (MIMIC style); icdreason reads both forms",
)

#: The released models' profiles, by alias.
PROFILES: dict[str, ModelProfile] = {
    "DeepICD-R1-7B": ModelProfile(
        name="DeepICD-R1-7B", hub_id="DATEXIS/DeepICD-R1-7B", prompt=_SINGLE_CODE_PROMPT, prefill="<think>",
        answer_form="undotted", eval_preset="deepicd-r1-eval", decoding={"max_new_tokens": 1024}, notes=_NOTES),
    "DeepICD-R1-zero-32B": ModelProfile(
        name="DeepICD-R1-zero-32B", hub_id="DATEXIS/DeepICD-R1-zero-32B", prompt=_SINGLE_CODE_PROMPT,
        prefill="<think>", answer_form="undotted", eval_preset="deepicd-r1-eval", decoding={"max_new_tokens": 1024},
        notes=_NOTES),
}


def find_profile(model: str | None) -> ModelProfile | None:
    """The profile of ``model`` (an alias, case-insensitive, or the hub id), or None for any other model."""
    if not model:
        return None
    hub_id = expand_alias(model)
    return next((p for p in PROFILES.values() if p.hub_id.lower() == hub_id.lower()), None)
