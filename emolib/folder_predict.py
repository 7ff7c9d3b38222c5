"""Folders of photos → one predictions file, streaming: ``emolib predict DIR --out predictions.jsonl``.

Images are found in a stable order (sorted, per folder; sub-folders with ``recursive``), read and
classified chunk by chunk, and each chunk's records are written before the next chunk is read, so
memory does not grow with the number of images. One record per image::

    {"path": "/abs/photo.jpg", "error": null, "faces_detected": 1, "detector": "yunet",
     "predictions": [{"emotion": "happy", ..., "box": {...}, "probabilities": {...}}]}

(the result dict of :class:`emolib.predict.EmotionPredictor`, plus ``path`` and ``error``); an image
that cannot be used gets ``"error": "<why>"``, ``faces_detected`` null and no predictions.

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

from emolib.data import IMAGE_SUFFIXES
from emolib.files import cut_torn_line, write_atomic

#: Images read and classified per chunk (one model call for all their faces; one write).
CHUNK = 64
OUTPUT_SUFFIXES = (".jsonl", ".parquet")


# ---------------------------------------------------------------------------------------------------
# Finding images
# ---------------------------------------------------------------------------------------------------


def find_images(roots: Iterable[str | os.PathLike], recursive: bool = False) -> Iterator[Path]:
    """Absolute paths of the images under ``roots``, sorted per folder, without building a list.

    A root that is a file is taken as it is (whatever its suffix); in folders only files ending in
    :data:`emolib.data.IMAGE_SUFFIXES` count. Hidden entries (``.name``) are left out.
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


def predict_records(predictor, items: Sequence[tuple[str, bytes | None, str | None]],
                    whole_image: bool = False) -> list[dict]:
    """Records of ``(path, content, read error)`` items: all their faces classified in one model call."""
    prepared, records = [], []
    for path, content, error in items:
        if error is None:
            try:
                prepared.append(predictor.prepare(content, whole_image=whole_image))
                records.append({"path": path, "error": None})
                continue
            except (ValueError, OSError) as problem:
                error = str(problem)
        records.append({"path": path, "error": error, "faces_detected": None, "detector": None,
                        "predictions": []})
    results = iter(predictor.finish(prepared))
    return [record if record["error"] else {**record, **next(results)} for record in records]


def read_item(path: Path) -> tuple[str, bytes | None, str | None]:
    """``(path, content, None)``, or ``(path, None, why)`` when the file cannot be read."""
    try:
        return str(path), path.read_bytes(), None
    except OSError as error:
        return str(path), None, f"cannot read file: {error.strerror or error}"


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
        data = memoryview("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            while data:  # a write may take only part of the data (a disk filling up)
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, end)
            raise
        finally:
            os.close(fd)

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
        table = pa.Table.from_pylist([_parquet_row(r) for r in records], schema=parquet_schema())
        write_atomic(self.path / f"part-{number:05d}.parquet", lambda tmp: pq.write_table(table, tmp))

    def read(self) -> list[dict]:
        import pyarrow.parquet as pq

        rows = [row for part in self._parts() for row in pq.read_table(part).to_pylist()]
        for row in rows:
            for face in row["predictions"] or []:
                face["probabilities"] = dict(face["probabilities"])
                for key in AFFECT_FIELDS:  # only models with a valence-arousal head give them
                    if face.get(key) is None:
                        face.pop(key, None)
        return rows


#: a face's optional fields, from a model with a valence-arousal head (null in Parquet otherwise)
AFFECT_FIELDS = ("valence", "arousal")


def parquet_schema():
    """The Parquet schema of a record (``probabilities``: a map, as label sets differ between models)."""
    import pyarrow as pa

    box = pa.struct([(k, pa.int64()) for k in ("x", "y", "w", "h")])
    face = pa.struct([("emotion", pa.string()), ("label", pa.string()), ("emoji", pa.string()),
                      ("confidence", pa.float64()), ("uncertain", pa.bool_()), ("box", box),
                      ("probabilities", pa.map_(pa.string(), pa.float64())),
                      *((key, pa.float64()) for key in AFFECT_FIELDS)])
    return pa.schema([("path", pa.string()), ("error", pa.string()), ("faces_detected", pa.int64()),
                      ("detector", pa.string()), ("predictions", pa.list_(face))])


def _parquet_row(record: dict) -> dict:
    return {key: record.get(key) for key in ("path", "error", "faces_detected", "detector", "predictions")}


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


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _local_chunks(paths: Iterable[Path], options: dict, whole_image: bool, chunk: int) -> Iterator[list]:
    from emolib.predict import EmotionPredictor

    paths = iter(paths)
    first = list(itertools.islice(paths, chunk))
    if not first:
        return  # nothing to do: no model loaded
    predictor = EmotionPredictor(**options)
    for batch in _batches(itertools.chain(first, paths), chunk):
        yield predict_records(predictor, [read_item(p) for p in batch], whole_image)


class PredictorActor:
    """A Ray Data actor: one :class:`~emolib.predict.EmotionPredictor`, records of batches of files."""

    def __init__(self, options: dict, whole_image: bool):
        from emolib.predict import EmotionPredictor

        self.predictor = EmotionPredictor(**options)
        self.whole_image = whole_image

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        items = [(str(path), bytes(content), None) for path, content in zip(batch["path"], batch["bytes"])]
        records = predict_records(self.predictor, items, self.whole_image)
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


def run_cli(args) -> int:
    """``emolib predict DIR... --out FILE``: stream records into FILE; 1 if some images had errors."""
    summary = predict_folder(args.images, args.out, recursive=args.recursive, model=args.model,
                             detector=args.detector, flip_tta=args.flip_tta, runtime=args.runtime,
                             whole_image=args.whole_image,
                             fallback=args.fallback, chunk=args.chunk, ray=args.ray is not None,
                             address=args.ray or None, workers=args.workers)
    rate = summary["images"] / summary["seconds"] if summary["seconds"] else 0.0
    print(f"{args.out}: {summary['images']} image(s) predicted ({rate:.1f} img/s), "
          f"{summary['skipped']} already there, {summary['errors']} with an error", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    return 1 if summary["errors"] else 0
