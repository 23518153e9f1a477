""":func:`predict_on_ray`: the prediction run of ``icdreason predict --ray``, with generation on Ray.

It takes the same arguments as :func:`icdreason.predict.predict` and is what :func:`icdreason.predict.run_predict`
calls instead (``runner=predict_on_ray``), so the output, the ``--db`` log and the run record are opened, resumed and
closed by the local code. The steps of each note are the local ones too (:func:`~icdreason.predict.prepare_prompt`,
:func:`~icdreason.predict.note_record`); only generation is handed to :meth:`RayEngine.stream
<icdreason.cluster.engine.RayEngine.stream>`, and records are written as Ray delivers them, ``batch_size`` at a time,
each batch durably before the next (the writers' guarantee), so a killed driver loses nothing that was written and
``--resume`` skips it. The notes are read as locally (streamed, the same skipping and retrying of error records by
:func:`~icdreason.predict.notes_to_predict`) and go to Ray :data:`WINDOW_NOTES` at a time: the driver's memory is
flat in the number of notes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ..engines.base import Engine, SamplingParams
from ..notes import Note
from ..predict import (
    Enrichment,
    PredictSettings,
    Summary,
    batch_handler,
    note_record,
    notes_to_predict,
    prepare_prompt,
    prompt_limit,
)
from ..prompts import PromptTemplate
from ..records import Record, RecordWriter

__all__ = ["predict_on_ray"]


#: Notes handed to Ray in one Dataset: the driver holds at most this many prompts (and their notes) at a time, and
#: each window is one Ray pipeline (its actors build the engine once per window).
WINDOW_NOTES = 10_000


def predict_on_ray(notes: Iterable[Note], *, engine: Engine, kb, template: PromptTemplate, params: SamplingParams,
                   writer: RecordWriter, run_id: str, settings: PredictSettings | None = None, db=None,
                   parameters: dict[str, Any] | None = None, progress: Callable[[int, int], None] | None = None,
                   on_records: Callable[[list[Record]], None] | None = None,
                   summary: Summary | None = None, window: int = WINDOW_NOTES) -> Summary:
    """Predict every note not yet in ``writer.done_ids`` (or ``db``'s run) with ``engine`` (a
    :class:`~icdreason.cluster.RayEngine`, or any engine: its :meth:`stream` decides where generation runs).

    The notes are streamed as locally (:func:`~icdreason.predict.notes_to_predict`: the same skipping and retrying
    of error records) and given to Ray ``window`` at a time, so the driver's memory does not grow with the input."""
    settings = settings or PredictSettings()
    parameters = dict(parameters or {})
    summary = summary or Summary(run_id=run_id, engine=engine.name, model=engine.model, uses_llm=engine.uses_llm)
    todo = notes_to_predict(notes, writer=writer, db=db, run_id=run_id, settings=settings, summary=summary)
    enrichment = Enrichment(kb) if settings.enrich else None
    start = time.perf_counter()

    def record(note: Note, prompt, flags: list[str], gen) -> Record:
        return note_record(note, prompt, flags, gen, kb=kb, engine=engine, run_id=run_id, parameters=parameters,
                           settings=settings, prefilled_think=template.prefilled_think, enrichment=enrichment)

    write = batch_handler(summary, writer=writer, db=db, total=len(todo), on_records=on_records, progress=progress)
    limit = prompt_limit(settings, engine)
    for notes_window in todo.batches(max(window, settings.batch_size)):
        problems: list[tuple[Note, list[str]]] = [(n, list(n.flags)) for n in notes_window if n.problem]
        prepared: dict[int, tuple[Note, list[str]]] = {}
        prompts = []
        for note in notes_window:
            if not note.problem:
                prompt, flags = prepare_prompt(note, template, settings.max_note_chars)
                if limit is not None:
                    note, prompt, flags = limit.apply(note, prompt, flags)
                    if prompt is None:  # too long: never given to the engine
                        problems.append((note, flags))
                        continue
                prepared[id(prompt)] = (note, flags)
                prompts.append(prompt)
        for i in range(0, len(problems), settings.batch_size):  # never given to the engine
            write([record(n, None, flags, None) for n, flags in problems[i:i + settings.batch_size]])
        del notes_window, problems
        pending: list[Record] = []
        stream = engine.stream(prompts, params, batch_size=settings.batch_size)
        while True:
            waited = time.perf_counter()
            pairs = next(stream, None)
            summary.engine_seconds += time.perf_counter() - waited
            if pairs is None:
                break
            for prompt, gen in pairs:
                note, flags = prepared.pop(id(prompt))
                pending.append(record(note, prompt, flags, gen))
            while len(pending) >= settings.batch_size:
                write(pending[:settings.batch_size])
                pending = pending[settings.batch_size:]
        if pending:
            write(pending)
    summary.seconds = time.perf_counter() - start
    return summary
