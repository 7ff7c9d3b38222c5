"""``emolib predict IMG... [--model] [--detector] [--whole-image] [--flip-tta] [--json]``: one line (or
JSON object) per image; with ``--explain OUT_DIR`` also each image's saliency overlay; with ``--out FILE``
(needed for folders) the images stream into a predictions file instead (:mod:`emolib.folder_predict`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from emolib import folder_predict, predict


def run(args) -> int:
    """Predict the images given; exit status 1 if any could not be read."""
    if args.out is not None and args.explain:
        raise ValueError("--explain writes an overlay per image: give images without --out")
    if args.out is not None:
        return _run_folders(args)
    if args.ray is not None:
        raise ValueError("--ray goes with --out predictions.jsonl|.parquet")
    folders = [name for name in args.images if os.path.isdir(name)]
    if folders:
        raise ValueError(f"{folders[0]} is a folder: give --out predictions.jsonl (or .parquet) "
                         "to label the images in it")
    predictor = predict.EmotionPredictor(model=args.model, detector=args.detector, flip_tta=args.flip_tta,
                                         fallback=args.fallback, runtime=args.runtime)
    if not args.whole_image:
        _ = predictor.detector  # a missing detector file is one clear error, not one per image
    if args.explain:
        return _run_explain(predictor, args)
    failed = 0
    for outcomes in predictor.predict_chunks(((name, name) for name in args.images), args.whole_image):
        for outcome in outcomes:
            if outcome.error is not None:
                failed += 1
                print(f"emolib predict: error: {outcome.key}: {outcome.error}", file=sys.stderr, flush=True)
            elif args.json:
                print(json.dumps({"image": outcome.key, **outcome.result}, ensure_ascii=False), flush=True)
            else:
                print(_describe(outcome.key, outcome.result), flush=True)
    return _report_failed(failed, len(args.images))


def _run_folders(args) -> int:
    """``emolib predict DIR... --out FILE``: stream records into FILE; 1 if some images had errors."""
    summary = folder_predict.predict_folder(
        args.images, args.out, recursive=args.recursive, model=args.model, detector=args.detector,
        flip_tta=args.flip_tta, runtime=args.runtime, whole_image=args.whole_image, fallback=args.fallback,
        chunk=args.chunk, ray=args.ray is not None, address=args.ray or None, workers=args.workers)
    rate = summary["images"] / summary["seconds"] if summary["seconds"] else 0.0
    print(f"{args.out}: {summary['images']} image(s) predicted ({rate:.1f} img/s), "
          f"{summary['skipped']} already there, {summary['errors']} with an error", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    return 1 if summary["errors"] else 0


def _run_explain(predictor: predict.EmotionPredictor, args) -> int:
    """``emolib predict --explain OUT_DIR``: the result line of each image, and its overlay PNG in OUT_DIR."""
    from emolib import explain as E
    from emolib.files import write_atomic

    out_dir = Path(args.explain)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed, written = 0, set()
    for name in args.images:
        try:
            explanation = predictor.explain(name, whole_image=args.whole_image)
        except (ValueError, OSError) as error:
            failed += 1
            print(f"emolib predict: error: {name}: {error}", file=sys.stderr, flush=True)
            continue
        stem, number = Path(name).stem or "image", 1
        target = out_dir / f"{stem}.png"
        while target in written:  # two images with one name: photo.png, photo-2.png
            number += 1
            target = out_dir / f"{stem}-{number}.png"
        written.add(target)
        write_atomic(target, E.png_bytes(explanation.overlay_image()))
        result = {**explanation.result, "predictions": [
            {key: value for key, value in face.items() if key != "saliency"}
            for face in explanation.result["predictions"]]}
        if args.json:
            print(json.dumps({"image": name, **result, "explanation": str(target)}, ensure_ascii=False),
                  flush=True)
        else:
            print(f"{_describe(name, result)}\n  saliency: {target}", flush=True)
    return _report_failed(failed, len(args.images))


def _report_failed(failed: int, total: int) -> int:
    """Say how many of ``total`` images could not be read; the exit status (1 if any)."""
    if failed:
        print(f"emolib predict: {failed} of {total} image(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def _describe(name: str, result: dict) -> str:
    """The text lines of one image's result dict."""
    lines = [f"{name}: {result['faces_detected']} face(s) [{result['detector']}]"]
    for i, face in enumerate(result["predictions"], start=1):
        box = face["box"]
        unsure = " (not sure)" if face.get("uncertain") else ""
        affect = (f", valence {face['valence']:+.2f} arousal {face['arousal']:+.2f}"
                  if "valence" in face else "")
        lines.append(f"  {i}. {face['emoji']} {face['label']} ({face['emotion']}) "
                     f"{face['confidence']:.1f} %{unsure}{affect} "
                     f"at x={box['x']} y={box['y']} w={box['w']} h={box['h']}")
    return "\n".join(lines)
