"""Folders of photos → one predictions file, streaming: ``emolib predict DIR --out predictions.jsonl``.

Images are found in a stable order (sorted, per folder; sub-folders with ``recursive``), read and
classified chunk by chunk, and each chunk's records are written before the next chunk is read, so
memory does not grow with the number of images. One record per image::

    {"path": "/abs/photo.jpg", "error": null, "faces_detected": 1, "detector": "yunet",
     "predictions": [{"emotion": "happy", ..., "box": {...}, "probabilities": {...}}]}

(:class:`emolib.results.ImageRecord`: the result dict of :class:`emolib.predict.EmotionPredictor`, plus
``path`` and ``error``); an image that cannot be used gets ``"error": "<why>"``, ``faces_detected`` null
and no predictions. Images go through the predictor's stream (:meth:`~emolib.predict.EmotionPredictor.
predict_chunks`), here and on Ray.

Outputs (chosen by the suffix of ``out``):

- ``.jsonl``: one JSON line per record; each chunk is appended and synced (a failed write, e.g. on a
  full disk, is cut back off). A torn last line left by a kill is cut off when the file is opened again.
- ``.parquet``: a folder of part files (``part-00000.parquet``...), each chunk one part written
  atomically (temporary file, then rename); ``pandas.read_parquet(out)`` reads them as one table.

Running again with the same ``out`` skips the images already in it (resume after a kill). With Ray
(:func:`predict_folder` ``ray=True``), the same records come from Ray Data: ``read_binary_files``
then ``map_batches`` over a pool of actors, each holding one predictor (model and detector loaded
once); the driver writes them in the order they come back.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from emolib.files import append_synced, cut_torn_line, write_atomic
from emolib.formats import IMAGE_SUFFIXES
from emolib.predict import CHUNK, EmotionPredictor
from emolib.results import OPTIONAL_FACE_FIELDS, ImageRecord, arrow_schema

OUTPUT_SUFFIXES = (".jsonl", ".parquet")


# ---------------------------------------------------------------------------------------------------
# Finding images
# ---------------------------------------------------------------------------------------------------


def find_images(roots: Iterable[str | os.PathLike], recursive: bool = False) -> Iterator[Path]:
    """Absolute paths of the images under ``roots``, sorted per folder, without building a list.

    A root that is a file is taken as it is (whatever its suffix); in folders only files ending in
    :data:`emolib.formats.IMAGE_SUFFIXES` count. Hidden entries (``.name``) are left out.
    """
    for root in roots:
        root = Path(root).expanduser().absolute()
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from _walk(root, recursive)
        else:
            raise FileNotFoundError(f"no such file or folder: {root}")


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    with os.scandir(folder) as entries:
        names = sorted((e.name, e.is_dir()) for e in entries if not e.name.startswith("."))
    for name, is_dir in names:
        path = folder / name
        if is_dir:
            if recursive:
                yield from _walk(path, recursive)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            yield path


# ---------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------


def record(outcome) -> dict:
    """The record of an image's :class:`emolib.predict.Outcome` (its key is the image's path)."""
    if outcome.error is not None:
        return {"path": outcome.key, "error": outcome.error, "faces_detected": None, "detector": None,
                "predictions": []}
    return {"path": outcome.key, "error": None, **outcome.result}


# ---------------------------------------------------------------------------------------------------
# Outputs: written chunk by chunk, read back for resume
# ---------------------------------------------------------------------------------------------------


class JsonlOutput:
    """Records appended to a JSON-lines file, one synced write per chunk."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut_torn_line(self.path)

    def done(self) -> set[str]:
        """Paths already in the file."""
        if not self.path.is_file():
            return set()
        with open(self.path, encoding="utf-8") as file:
            return {json.loads(line)["path"] for line in file if line.strip()}

    def write(self, records: Sequence[dict]) -> None:
        """Append ``records`` and sync; on an error (a full disk) the file is cut back to its former end."""
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        append_synced(self.path, lines.encode("utf-8"))

    def read(self) -> list[dict]:
        with open(self.path, encoding="utf-8") as file:
            return [json.loads(line) for line in file if line.strip()]


class ParquetOutput:
    """Records as a folder of Parquet part files, one part per chunk, each written atomically."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_file():
            raise ValueError(f"{self.path} is a file; a .parquet output is a folder of part files")
        self.path.mkdir(parents=True, exist_ok=True)

    def _parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"))

    def done(self) -> set[str]:
        import pyarrow.parquet as pq

        return {path for part in self._parts()
                for path in pq.read_table(part, columns=["path"])["path"].to_pylist()}

    def write(self, records: Sequence[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = self._parts()
        number = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        table = pa.Table.from_pylist([_parquet_row(r) for r in records], schema=arrow_schema(ImageRecord))
        write_atomic(self.path / f"part-{number:05d}.parquet", lambda tmp: pq.write_table(table, tmp))

    def read(self) -> list[dict]:
        import pyarrow.parquet as pq

        rows = [row for part in self._parts() for row in pq.read_table(part).to_pylist()]
        for row in rows:
            for face in row["predictions"] or []:
                face["probabilities"] = dict(face["probabilities"])
                for key in OPTIONAL_FACE_FIELDS:  # null in Parquet where the model gives none
                    if face.get(key) is None:
                        face.pop(key, None)
        return rows


def _parquet_row(record: dict) -> dict:
    return {key: record.get(key) for key in ImageRecord.model_fields}


def open_output(path: str | os.PathLike) -> JsonlOutput | ParquetOutput:
    """The output for ``path``, by its suffix (``.jsonl`` or ``.parquet``)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        return JsonlOutput(path)
    if suffix == ".parquet":
        return ParquetOutput(path)
    raise ValueError(f"--out must end in {' or '.join(OUTPUT_SUFFIXES)}, not {path}")


# ---------------------------------------------------------------------------------------------------
# Prediction over folders: here, or on Ray Data
# ---------------------------------------------------------------------------------------------------


def predict_folder(roots: Iterable[str | os.PathLike], out: str | os.PathLike, *, recursive: bool = False,
                   model=None, detector: str | None = None, flip_tta: bool = False, runtime: str = "auto",
                   whole_image: bool = False, fallback: str = "none", chunk: int = CHUNK, ray: bool = False,
                   address: str | None = None, workers: int = 1, progress: bool = True) -> dict:
    """Predict every image under ``roots`` not yet in ``out``; append their records chunk by chunk.

    Parameters
    ----------
    roots : folders (and files) to label.
    out : ``.jsonl`` file or ``.parquet`` folder (see the module notes); its images are skipped.
    model, detector, flip_tta, runtime, whole_image, fallback : as for
        :class:`emolib.predict.EmotionPredictor`.
    chunk : images per model call and per write.
    ray, address, workers : run on Ray Data (a local Ray, or the cluster at ``address``) with
        ``workers`` predictor actors.

    Returns
    -------
    dict
        ``images`` (predicted now), ``skipped`` (already in ``out``), ``errors`` (records with an
        error, now), ``seconds``.
    """
    import time

    from tqdm.auto import tqdm

    roots = list(roots)
    output = open_output(out)
    done = output.done()
    total = sum(1 for p in find_images(roots, recursive) if str(p) not in done)
    pending = (p for p in find_images(roots, recursive) if str(p) not in done)
    options = {"model": model, "detector": detector, "flip_tta": flip_tta, "fallback": fallback,
               "runtime": runtime}
    summary = {"images": 0, "skipped": len(done), "errors": 0}
    started = time.perf_counter()
    with tqdm(total=total, unit="img", desc="predict", disable=not progress, file=sys.stderr) as bar:
        chunks = (_ray_chunks(pending, options, whole_image, chunk, address, workers) if ray
                  else _local_chunks(pending, options, whole_image, chunk))
        for records in chunks:
            output.write(records)
            summary["images"] += len(records)
            summary["errors"] += sum(r["error"] is not None for r in records)
            bar.update(len(records))
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _local_chunks(paths: Iterable[Path], options: dict, whole_image: bool, chunk: int) -> Iterator[list]:
    paths = iter(paths)
    first = list(itertools.islice(paths, chunk))
    if not first:
        return  # nothing to do: no model loaded
    predictor = EmotionPredictor(**options)
    items = ((str(path), path) for path in itertools.chain(first, paths))
    for outcomes in predictor.predict_chunks(items, whole_image, chunk):
        yield [record(outcome) for outcome in outcomes]


class PredictorActor:
    """A Ray Data actor: one :class:`~emolib.predict.EmotionPredictor`, records of batches of files."""

    def __init__(self, options: dict, whole_image: bool):
        self.predictor = EmotionPredictor(**options)
        self.whole_image = whole_image

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        items = [(str(path), bytes(content)) for path, content in zip(batch["path"], batch["bytes"])]
        records = [record(outcome) for outcomes in self.predictor.predict_chunks(items, self.whole_image,
                                                                                 chunk=max(1, len(items)))
                   for outcome in outcomes]
        return {"record": np.array([json.dumps(r, ensure_ascii=False) for r in records], dtype=object)}


def _ray_chunks(paths: Iterable[Path], options: dict, whole_image: bool, chunk: int, address: str | None,
                workers: int) -> Iterator[list]:
    from emolib.cluster import connect

    ray = connect(address)
    paths = [str(p) for p in paths]
    if not paths:
        return
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver shows one bar for the whole job
    # reading holds no CPU slot: `workers` actors may take every CPU without starving the reads; so that
    # free reads do not outrun the predictors, at most `workers` read tasks run at once
    dataset = ray.data.read_binary_files(paths, include_paths=True, num_cpus=0, concurrency=workers)
    dataset = dataset.map_batches(PredictorActor, fn_constructor_kwargs={"options": options,
                                                                          "whole_image": whole_image},
                                  batch_size=chunk, concurrency=workers, num_cpus=1)
    for batch in dataset.iter_batches(batch_size=chunk, batch_format="numpy"):
        yield [json.loads(text) for text in batch["record"]]
