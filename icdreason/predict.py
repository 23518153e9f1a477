"""The prediction pipeline: notes -> prompts -> engine -> parse -> validate -> vote -> enrich -> records.

:func:`predict` runs a list of :class:`~icdreason.notes.Note` through an engine batch by batch, writing each batch
durably before the next one starts, and returns a :class:`Summary`. A note that cannot be predicted (empty, binary,
unreadable, or an engine failure on it) still gets a record that says why; the batch goes on. An engine that finds
its server gone raises :class:`~icdreason.errors.ServiceUnavailable`: the run stops, the batch in flight is not
written, and the batches before it are kept. On ``--resume`` the notes whose record is an error are predicted again
(``retry_errors``) and their records replaced.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .codes import chapter_of
from .engines.base import Engine, Generation, Prompt, SamplingParams
from .errors import IcdreasonError, ServiceUnavailable
from .interrupts import signals_deferred
from .notes import Note, truncate_middle
from .parse import Parsed, parse_response
from .prompts import PromptTemplate, neutralize_note
from .prompts.length import PromptLimit
from .records import Record, RecordWriter
from .records.record import MODEL_PARAMETERS
from .settings import Settings, option
from .vote import vote

__all__ = ["PredictSettings", "Summary", "predict", "sampling_for", "DEFAULT_MAX_NOTE_CHARS", "prepare_prompt",
           "generate_batch", "note_record", "Enrichment", "count_records", "notes_to_predict", "ToPredict",
           "write_records", "run_parameters", "prompt_limit", "batch_handler"]

#: Notes longer than this are cut in the middle. About 2,000 tokens of English clinical text: the 2,048-token prompt
#: budget the reference models were trained with.
DEFAULT_MAX_NOTE_CHARS = 8000


@dataclass
class PredictSettings(Settings):
    """How notes are turned into records (everything except the engine and the output)."""

    top_k: int = option(5, "Differential codes kept per note, with their support (the record's top_k list; not sampling "
                      "top-k).", min=1, max=50)
    batch_size: int = option(32, "Notes per engine call and per flush to disk.", min=1)
    max_note_chars: int = option(DEFAULT_MAX_NOTE_CHARS, "Longer notes are cut in the middle (head and tail kept, "
                                 "flagged). 0: never.", min=0)
    keep_raw: bool = option(False, "Store the raw model output in each record.")
    include_note: bool = option(True, "Keep the note text in each record.")
    enrich: bool = option(True, "Add symptom and guideline enrichment from the knowledge base.")
    retry_errors: bool = option(True, "On --resume, predict again the notes whose record is an error (an engine or "
                                "server failure) and replace those records.")
    max_prompt_tokens: int = option(0, "Prompts over this many tokens (message texts joined by spaces, counted with "
                                    "the model's tokenizer as the authors' evaluation counts them) are handled as "
                                    "long_prompts says. 0: no limit.", min=0)
    long_prompts: str = option("skip", "Prompts over max_prompt_tokens: skip (not generated; the record says why, "
                               "flag prompt_too_long) or flag (generated, flag prompt_over_limit).")
    prompt_tokenizer: str | None = option(None, "Tokenizer counting prompt tokens: a hub id or directory (default: "
                                          "the model's).")
    preset: str | None = option(None, "The predict preset these settings came from (recorded with the run).")

    def __post_init__(self) -> None:
        from .prompts.length import LONG_PROMPT_POLICIES

        if self.long_prompts not in LONG_PROMPT_POLICIES:
            from .errors import UsageError

            raise UsageError(f"long_prompts must be one of {', '.join(LONG_PROMPT_POLICIES)}, not {self.long_prompts!r}")


@dataclass
class Summary:
    """What a run did: counts by status and chapter, throughput, tokens."""

    run_id: str
    engine: str
    model: str | None
    uses_llm: bool
    total: int = 0  # notes given
    skipped: int = 0  # already written (resume)
    retried: int = 0  # notes whose error record was replaced by this session (resume)
    predicted: int = 0  # records written by this session
    seconds: float = 0.0
    engine_seconds: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    by_status: Counter = field(default_factory=Counter)
    by_chapter: Counter = field(default_factory=Counter)
    flags: Counter = field(default_factory=Counter)
    errors: int = 0
    enrichment: str | None = None  # scraped | tabular | off (None: not known, e.g. a runner called directly)
    notices: list[str] = field(default_factory=list)  # said once per run, e.g. that enrichment is empty
    well_formed: int = 0  # LLM answers that pass the paper's format check (<think>…</think><diagnosis>CODE</diagnosis>)
    salvaged: int = 0  # LLM answers that fail it, yet the tolerant parser found a code in them

    @property
    def notes_per_second(self) -> float:
        return self.predicted / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes_per_second"] = round(self.notes_per_second, 2)
        for key in ("by_status", "by_chapter", "flags"):
            d[key] = dict(getattr(self, key))
        return d


def sampling_for(n: int = 1, temperature: float | None = None, **kwargs) -> SamplingParams:
    """Sampling settings with the training defaults: temperature 0 for one sample, 0.9 for several."""
    if n < 1:
        from .errors import UsageError

        raise UsageError(f"--n must be at least 1, got {n}")
    if temperature is None:
        temperature = 0.0 if n == 1 else 0.9
    return SamplingParams(n=n, temperature=temperature, **kwargs)


def _prepare(note: Note, template: PromptTemplate, max_chars: int) -> tuple[Prompt, list[str]]:
    text, truncated = truncate_middle(note.text, max_chars)
    flags = list(note.flags)
    if truncated:
        flags.append("truncated")
    text, found = neutralize_note(text)
    flags.extend(f for f in found if f not in flags)
    return template.render(note.id, text), flags


def _generate(engine: Engine, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
    """Generate for a batch; when the engine raises, retry one prompt at a time so one bad note cannot sink the
    batch. An :class:`IcdreasonError` raised for every prompt (a server down, weights missing) stops the run."""
    try:
        gens = engine.generate(prompts, params)
        if len(gens) != len(prompts):
            raise RuntimeError(f"engine returned {len(gens)} results for {len(prompts)} prompts")
        return gens
    except ServiceUnavailable:  # the server is gone: stop, do not try each note against it
        raise
    except IcdreasonError:
        if len(prompts) == 1:
            raise
    except Exception:  # noqa: BLE001 - retried one by one below
        pass
    out: list[Generation] = []
    systemic: IcdreasonError | None = None
    for prompt in prompts:
        try:
            out.extend(engine.generate([prompt], params))
        except ServiceUnavailable:
            raise
        except IcdreasonError as exc:
            systemic = exc
            out.append(Generation(texts=[], error=str(exc)))
        except Exception as exc:  # noqa: BLE001 - recorded on the note
            out.append(Generation(texts=[], error=f"{type(exc).__name__}: {exc}"))
    if systemic is not None and all(g.error for g in out):
        raise systemic
    return out


def _choose(parsed: list[Parsed], statuses: list[str], top_k: int):
    """Vote over the samples that have a well-formed code; billable codes win ties."""
    codes = [p.code if p.code and s != "malformed" else None for p, s in zip(parsed, statuses)]
    billable = {p.code for p, s in zip(parsed, statuses) if s == "billable" and p.code}
    return vote(codes, k=top_k, prefer=lambda c: c in billable)


def _record(note: Note, prompt: Prompt | None, flags: list[str], gen: Generation | None, **kwargs) -> Record:
    """The record of one note; a failure while reading the engine's answer is an error on that note only."""
    try:
        return _build_record(note, prompt, flags, gen, **kwargs)
    except Exception as exc:  # noqa: BLE001 - bad input never kills a batch
        engine: Engine = kwargs["engine"]
        rec = _new_record(note, engine, kwargs["run_id"], kwargs["parameters"], list(flags))
        rec.error = f"could not read the engine's answer ({type(exc).__name__}: {exc})"
        return rec


def _new_record(note: Note, engine: Engine, run_id: str, parameters: dict[str, Any], flags: list[str]) -> Record:
    """An empty record of a note; for an engine without a model, the fields that describe one are null (Record's
    rule), also when the note never reaches the engine."""
    rec = Record(id=note.id, source=note.source, run_id=run_id, engine=engine.name, model=engine.model,
                 uses_llm=engine.uses_llm, parameters=parameters, flags=flags)
    if not engine.uses_llm:
        rec.format_ok = rec.confidence = None
    return rec


def _build_record(note: Note, prompt: Prompt | None, flags: list[str], gen: Generation | None, *, kb,
                  engine: Engine, run_id: str, parameters: dict[str, Any], settings: PredictSettings,
                  prefilled_think: bool, enrichment: _Enrichment | None = None) -> Record:
    rec = _new_record(note, engine, run_id, parameters, flags)
    if settings.include_note:
        rec.note = prompt.note if prompt is not None else note.text
    if gen is None:  # not given to the engine
        rec.error = note.problem
        return rec
    rec.tokens_in, rec.tokens_out, rec.seconds = gen.tokens_in, gen.tokens_out, round(gen.seconds, 4)
    rec.error = gen.error
    odd = next((t for t in gen.texts if not isinstance(t, str)), None)
    if odd is not None:
        rec.error = f"the engine answered with a {type(odd).__name__}, not text"
        return rec
    rec.flags.extend(_generation_flags(gen))
    if settings.keep_raw:
        rec.raw = list(gen.texts)
    if not gen.texts:
        return rec
    parsed = [parse_response(t, prefilled_think=prefilled_think) for t in gen.texts]
    statuses = kb.statuses([p.code or p.code_raw or "" for p in parsed])
    outcome = _choose(parsed, statuses, settings.top_k)
    chosen = next((p for p in parsed if outcome.code and p.code == outcome.code), parsed[0])
    rec.trace, rec.code_raw, rec.format_ok, rec.parse_note = chosen.trace, chosen.code_raw, chosen.format_ok, chosen.why
    if not engine.uses_llm:  # no model output was checked: the format check does not apply (Record's rule)
        rec.format_ok = rec.parse_note = None
    if len(parsed) > 1:
        ok = sum(p.format_ok for p in parsed)
        if ok < len(parsed):
            rec.flags.append(f"format_failed_in_{len(parsed) - ok}_of_{len(parsed)}_samples")
    candidates = gen.extra.get("candidates") if gen.extra else None
    if candidates:  # the retriever: candidate share and differential from its scored candidates
        weighted = vote([c for c, _ in candidates], weights=[s for _, s in candidates], k=settings.top_k,
                        final=outcome.code)
        rec.confidence, rec.candidate_share, rec.top_k = None, weighted.confidence, weighted.top_k
    else:  # the vote over the samples (an engine without a model drew none: its confidence stays null)
        rec.top_k = outcome.top_k
        if engine.uses_llm:
            rec.confidence = outcome.confidence
    target = outcome.code or chosen.code_raw
    if not target:
        rec.status = "no_output"
        return rec
    verdict = kb.validate(target)
    rec.code = verdict.code if verdict.status != "malformed" else None
    rec.status = verdict.status
    rec.description, rec.category, rec.suggestions = verdict.description, verdict.category, verdict.suggestions
    chapter = verdict.chapter
    if chapter is None and rec.code:
        found = chapter_of(rec.code)
        chapter = found.number if found else None
    rec.chapter = chapter
    if enrichment is not None and rec.status in ("billable", "header"):
        for key, value in enrichment.get(rec.code).items():
            setattr(rec, key, value)
    return rec


def run_parameters(engine: Engine, params: SamplingParams, template: PromptTemplate, settings: PredictSettings,
                   kb) -> dict[str, Any]:
    """The ``parameters`` of a run's records and of its run row: sampling, prompt, truncation, knowledge base and
    where enrichment comes from. Those that describe a model or a prompt are None for an engine that uses neither."""
    from .kb.enrich import enrichment_source

    parameters = {
        "n": params.n, "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
        "min_p": params.min_p, "repetition_penalty": params.repetition_penalty,
        "max_new_tokens": params.max_new_tokens, "seed": params.seed, "constrain": params.constrain,
        "prompt_template": template.name, "prompt_template_sha256": template.sha256,
        "prompt_source": template.source, "max_note_chars": settings.max_note_chars,
        "max_prompt_tokens": settings.max_prompt_tokens, "preset": settings.preset, "kb_release": kb.release,
        "enrichment": enrichment_source(kb) if settings.enrich else "off",
    }
    if settings.max_prompt_tokens:
        parameters["long_prompts"] = settings.long_prompts
    if not engine.uses_llm:
        parameters.update(dict.fromkeys(MODEL_PARAMETERS))
    return parameters


def _generation_flags(gen: Generation) -> list[str]:
    """Flags from what the engine reported: answers cut at --max-new-tokens, a prefill the server could not take."""
    extra = gen.extra or {}
    flags = []
    reasons = list(extra.get("finish_reasons") or [])
    cut = sum(1 for reason in reasons if reason == "length")
    if cut:
        flags.append("output_truncated" if len(reasons) == 1 else f"output_truncated_in_{cut}_of_{len(reasons)}_samples")
    if extra.get("prefill") == "drop":
        flags.append("prefill_dropped")
    flags.extend(str(flag) for flag in extra.get("flags") or ())  # e.g. the retriever's evidence_too_thin
    return flags


class _Enrichment:
    """``enrichment_for`` with a per-run memo: scraped symptoms and guidelines, else the Tabular List's notes."""

    def __init__(self, kb):
        from .kb.enrich import enrichment_source

        self.kb = kb
        self.source = enrichment_source(kb)  # "scraped" | "tabular"
        self.memo: dict[str, dict] = {}

    def get(self, code: str) -> dict:
        if code not in self.memo:
            from .kb.enrich import enrichment_for

            self.memo[code] = enrichment_for(self.kb, code, scraped=self.source == "scraped")
        return self.memo[code]


def predict(notes: Iterable[Note], *, engine: Engine, kb, template: PromptTemplate, params: SamplingParams,
            writer: RecordWriter, run_id: str, settings: PredictSettings | None = None, db=None,
            parameters: dict[str, Any] | None = None, progress: Callable[[int, int], None] | None = None,
            on_records: Callable[[list[Record]], None] | None = None, summary: Summary | None = None) -> Summary:
    """Predict every note not yet in ``writer.done_ids`` (or ``db``'s run), batch by batch; return the summary.

    ``notes`` may be a list or a :class:`~icdreason.notes.NoteSource` (streamed: one batch of notes is held at a
    time). ``progress(done, total)`` is called after each batch; ``on_records`` receives each written batch. Pass a
    ``summary`` to have it filled in place (its counts then survive an interruption).
    """
    settings = settings or PredictSettings()
    parameters = dict(parameters or {})
    summary = summary or Summary(run_id=run_id, engine=engine.name, model=engine.model, uses_llm=engine.uses_llm)
    todo = notes_to_predict(notes, writer=writer, db=db, run_id=run_id, settings=settings, summary=summary)
    enrichment = _Enrichment(kb) if settings.enrich else None
    limit = prompt_limit(settings, engine)
    hand_on = batch_handler(summary, writer=writer, db=db, total=len(todo), on_records=on_records, progress=progress)
    for batch in todo.batches(settings.batch_size):
        prepared: list[tuple[Note, Prompt | None, list[str]]] = []
        for note in batch:
            if note.problem:
                prepared.append((note, None, list(note.flags)))
            else:
                prompt, flags = _prepare(note, template, settings.max_note_chars)
                prepared.append(limit.apply(note, prompt, flags) if limit is not None else (note, prompt, flags))
        prompts = [p for _, p, _ in prepared if p is not None]
        t0 = time.perf_counter()
        gens = iter(_generate(engine, prompts, params) if prompts else [])
        summary.engine_seconds += time.perf_counter() - t0
        records = []
        for note, prompt, flags in prepared:
            gen = next(gens) if prompt is not None else None
            records.append(_record(note, prompt, flags, gen, kb=kb, engine=engine, run_id=run_id,
                                   parameters=parameters, settings=settings,
                                   prefilled_think=template.prefilled_think, enrichment=enrichment))
        hand_on(records)
    return summary


class ToPredict:
    """The notes a run still has to predict (:func:`notes_to_predict`): ``len()`` of them, iterated in input order
    and read as they are iterated (a :class:`~icdreason.notes.NoteSource` is never held whole)."""

    def __init__(self, notes: Iterable[Note], skip: set[str], count: int):
        self._notes, self._skip, self._count = notes, skip, count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Note]:
        return (n for n in self._notes if n.id not in self._skip)

    def batches(self, size: int) -> Iterator[list[Note]]:
        """The notes ``size`` at a time."""
        notes = iter(self)
        while batch := list(itertools.islice(notes, max(size, 1))):
            yield batch


def _ids(notes: Iterable[Note]) -> Iterable[str]:
    ids = getattr(notes, "ids", None)
    return ids() if callable(ids) else (n.id for n in notes)


def notes_to_predict(notes: Iterable[Note], *, writer: RecordWriter, db, run_id: str, settings: PredictSettings,
                     summary: Summary) -> ToPredict:
    """The notes a run (or a resumed run) still has to predict, in order: those without a record in ``writer`` or
    ``db``, and, with ``settings.retry_errors``, those whose record is an error (those records are dropped from
    both outputs first, so the new ones replace them). Fills ``summary.total``, ``skipped`` and ``retried``. Every
    runner of the pipeline starts here.

    Counting reads ids only (:meth:`NoteSource.ids <icdreason.notes.NoteSource.ids>`); the notes themselves are
    read once more only when error records are to be retried (a note that cannot be read is not retried: it would
    get the same error)."""
    if not isinstance(notes, Sequence) and not callable(getattr(notes, "ids", None)):
        notes = list(notes)  # a one-shot iterator: counted and then predicted, so kept
    done = set(writer.done_ids)
    if db is not None:
        done |= db.done_ids(run_id)
    failed: set[str] = set()
    if settings.retry_errors:
        failed = set(writer.error_ids) | (db.error_ids(run_id) if db is not None else set())
    total = skipped = 0
    failed_here = set()
    for note_id in _ids(notes):
        total += 1
        if note_id in done:
            skipped += 1
            if note_id in failed:
                failed_here.add(note_id)
    retry = {n.id for n in notes if n.id in failed_here and not n.problem} if failed_here else set()
    if retry:
        writer.drop(retry)
        if db is not None:
            db.drop(run_id, retry)
        done -= retry
        summary.retried = len(retry)
    summary.total = total
    summary.skipped = skipped - len(retry)
    return ToPredict(notes, done, total - summary.skipped)


def write_records(records: list[Record], *, writer: RecordWriter, db=None) -> None:
    """Write one batch to the output and the ``--db`` log, whole: Ctrl-C and SIGTERM are held until both have it.
    Every runner of the pipeline writes through here."""
    with signals_deferred():
        writer.write_batch(records)
        if db is not None:
            db.write_batch(records)


def _reconcile(writer: RecordWriter, db, run_id: str) -> None:
    """After a kill between the file write and the database write of a batch, copy the records one output has
    and the other lacks, so that neither loses them and the notes are not predicted twice."""
    if writer.path is None:
        return
    in_db = db.done_ids(run_id)
    missing_in_db = set(writer.done_ids) - in_db
    if missing_in_db:
        db.write_batch(writer.records(missing_in_db))
    missing_in_file = in_db - set(writer.done_ids)
    if missing_in_file:
        writer.write_batch(db.records(run_id, missing_in_file))


# -- the steps of one note, public for other runners of the same pipeline (icdreason.cluster generates on Ray) ------
def prepare_prompt(note: Note, template: PromptTemplate, max_chars: int) -> tuple[Prompt, list[str]]:
    """The prompt of one note (cut in the middle when longer than ``max_chars``, neutralised, rendered) and its
    flags: what :func:`predict` gives the engine."""
    return _prepare(note, template, max_chars)


def note_record(note: Note, prompt: Prompt | None, flags: list[str], gen: Generation | None, *, kb, engine: Engine,
                run_id: str, parameters: dict[str, Any], settings: PredictSettings, prefilled_think: bool,
                enrichment: Enrichment | None = None) -> Record:
    """parse -> validate -> vote -> enrich -> :class:`Record` for one note, as :func:`predict` does (``gen`` None:
    the note was not given to the engine, its ``problem`` says why)."""
    return _record(note, prompt, flags, gen, kb=kb, engine=engine, run_id=run_id, parameters=parameters,
                   settings=settings, prefilled_think=prefilled_think, enrichment=enrichment)


def prompt_limit(settings: PredictSettings, engine: Engine) -> PromptLimit | None:
    """The prompt-length limit of a run (``settings.max_prompt_tokens``; None: no limit), counting with
    ``settings.prompt_tokenizer`` or the engine's model. Apply it with ``limit.apply(note, prompt, flags)`` after
    :func:`prepare_prompt`: an over-long prompt comes back as None under the ``skip`` policy."""
    if not settings.max_prompt_tokens:
        return None
    tokenizer = settings.prompt_tokenizer or engine.model
    if not tokenizer:
        from .errors import UsageError

        raise UsageError("max_prompt_tokens needs a tokenizer: pass --model (or set prompt_tokenizer)")
    return PromptLimit(settings.max_prompt_tokens, tokenizer, policy=settings.long_prompts)


def generate_batch(engine: Engine, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
    """One generation per prompt, as :func:`predict` gets them: a batch the engine fails on is retried one prompt at
    a time, so one bad note costs only its own record; an :class:`IcdreasonError` raised for every prompt (a server
    down, weights missing) is raised."""
    return _generate(engine, prompts, params)


class Enrichment(_Enrichment):
    """Symptom and guideline enrichment of a run, memoised per code (give one to :func:`note_record`)."""


def batch_handler(summary: Summary, *, writer: RecordWriter, db=None, total: int,
                  on_records: Callable[[list[Record]], None] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Callable[[list[Record]], None]:
    """What every runner does with a batch of records: write it whole (:func:`write_records`), count it into
    ``summary`` (with the run's seconds so far), then tell ``on_records`` and ``progress(done, total)``. Calls
    ``progress(0, total)`` now."""
    start = time.perf_counter()

    def hand_on(records: list[Record]) -> None:
        write_records(records, writer=writer, db=db)
        count_records(summary, records)
        summary.seconds = time.perf_counter() - start
        if on_records:
            on_records(records)
        if progress:
            progress(summary.predicted, total)

    if progress:
        progress(0, total)
    return hand_on


def count_records(summary: Summary, records: list[Record]) -> None:
    """Add written records to a run's summary (status, chapter, flags, tokens, errors), as :func:`predict` does."""
    for r in records:
        summary.by_status[r.status] += 1
        summary.by_chapter[r.chapter if r.chapter is not None else "-"] += 1
        summary.flags.update(r.flags)
        summary.tokens_in += r.tokens_in
        summary.tokens_out += r.tokens_out
        if r.uses_llm and r.error is None:
            summary.well_formed += bool(r.format_ok)
            summary.salvaged += not r.format_ok and bool(r.code_raw)
        summary.errors += r.error is not None
    summary.predicted += len(records)


# -- a whole run: what `icdreason predict` does, as a library call -----------------------------------------------
def build_engine(name: str | None, model: str | None, options: dict[str, Any] | None = None, *, kb=None,
                 base_urls: list[str] | None = None) -> Engine:
    """Choose (when ``name`` is None), import and construct an engine; unknown options are an error."""
    from .engines.registry import choose_engine, engine_class

    chosen = choose_engine(name, model=model, base_urls=base_urls)
    cls = engine_class(chosen)
    opts = cls.Options.from_dict(options or {})
    return cls(model, opts, kb)


def run_predict(notes: Iterable[Note], *, engine: Engine, kb, out: str | None = None, fmt: str | None = None,
                db_path: str | None = None, resume: bool = False, overwrite: bool = False, run_id: str | None = None,
                params: SamplingParams | None = None, template: PromptTemplate | None = None,
                settings: PredictSettings | None = None, command: str | None = None,
                progress: Callable[[int, int], None] | None = None,
                on_records: Callable[[list[Record]], None] | None = None, stream=None,
                runner: Callable[..., Summary] | None = None,
                notify: Callable[[str], None] | None = None) -> Summary:
    """Open the output (and the ``--db`` log), pick or resume the run id, predict, and log the run.

    ``runner`` replaces :func:`predict` (same arguments), e.g. :func:`icdreason.cluster.predict_on_ray`.
    ``notify`` receives, once, what the run should say before it starts (``Summary.notices``: that enrichment is
    empty and how to fill it).

    The run row (engine, model, options, prompt-template hash, KB release, timings, token counts) is written before
    the first note and completed at the end, also when the run is interrupted (``KeyboardInterrupt``, which includes
    :class:`~icdreason.interrupts.Terminated`: status ``interrupted``).
    """
    from . import __version__
    from .prompts import load_template
    from .records import new_run_id, open_writer

    settings = settings or PredictSettings()
    template = template or load_template()
    params = params or sampling_for(1)
    if not engine.supports_sampling and params.n > 1:
        params = SamplingParams(**{**asdict(params), "n": 1, "temperature": 0.0})
    if params.constrain and not engine.supports_constrain:
        from .errors import UsageError

        raise UsageError(f"--constrain is not available with the {engine.name} engine: use transformers or vllm")
    writer: RecordWriter | None = None
    db = None
    status = "failed"
    summary: Summary | None = None
    try:
        # Both outputs are locked before either is read or trimmed: a run that finds the other busy touches nothing.
        if db_path:
            from .records import PredictionDB

            db = PredictionDB(db_path)
        if resume and out is None and db is None:
            from .errors import UsageError

            raise UsageError("--resume needs --out FILE or --db FILE: the output to continue")
        writer = open_writer(out, fmt=fmt, resume=resume and out is not None, overwrite=overwrite,
                             include_note=settings.include_note, keep_raw=settings.keep_raw, stream=stream)
        if run_id is None and resume:
            run_id = writer.existing_run_id or (db.latest_run() if db is not None and out is None else None)
        run_id = run_id or new_run_id()
        parameters = run_parameters(engine, params, template, settings, kb)
        if db is not None:
            described = engine.describe()
            db.start_run(run_id, {
                "engine": engine.name, "model": engine.model, "uses_llm": engine.uses_llm,
                "options": described.get("options"), "parameters": parameters,
                "prompt_template": parameters["prompt_template"],
                "prompt_template_hash": parameters["prompt_template_sha256"], "kb_release": kb.release,
                "kb_path": str(kb.path),
                "icdreason_version": __version__, "command": command,
                "out_path": None if out in (None, "-") else str(out),
            })
        if resume and db is not None:
            _reconcile(writer, db, run_id)
        summary = Summary(run_id=run_id, engine=engine.name, model=engine.model, uses_llm=engine.uses_llm,
                          enrichment=parameters["enrichment"])
        if parameters["enrichment"] == "tabular":
            from .kb.enrich import EMPTY_ENRICHMENT_NOTICE

            summary.notices.append(EMPTY_ENRICHMENT_NOTICE)
        for notice in summary.notices if notify else ():
            notify(notice)
        (runner or predict)(notes, engine=engine, kb=kb, template=template, params=params, writer=writer,
                            run_id=run_id, settings=settings, db=db, parameters=parameters, progress=progress,
                            on_records=on_records, summary=summary)
        status = "finished"
        return summary
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        with signals_deferred():  # a second Ctrl-C must not leave the run marked "running"
            if writer is not None:
                writer.close(complete=status == "finished")
            if db is not None:
                if run_id is not None and db.has_run(run_id):
                    s = summary
                    db.finish_run(run_id, status=status, seconds=s.seconds if s else 0.0,
                                  engine_seconds=s.engine_seconds if s else 0.0)
                db.close()
