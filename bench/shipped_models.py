"""The shipped models side by side: FER+ test (8 classes), FER+ test on the 7 classes both know, FER2013 test.

    .venv/bin/python bench/shipped_models.py [--models emolib-fer2013 emolib-ferplus] [--json]

Each model is scored by ``emolib.evaluate.evaluate_split`` on faces decoded at its own input size. On the
"7 shared classes" row, FER+'s contempt faces are left out and an 8-class model's prediction is restricted to
the other seven (its contempt column is ignored), so a 7-class and an 8-class model answer the same question.
FER+ test (FER2013Test, majority labels) holds FER2013's PrivateTest faces; FER2013 test holds PublicTest and
PrivateTest, so the last column is partly the same faces under FER2013's own (noisier) labels.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import numpy as np

from emolib import data, labels, models
from emolib.evaluate import evaluate_split

SHARED = os.environ.get("EMOLIB_SHARED", "../shared")


def seven_shared(split: data.Split) -> data.Split:
    """FER+ test without its contempt faces, as a 7-class split (the first seven of EMOTIONS_8)."""
    kept = split.subset(split.labels != labels.EMOTIONS_8.index("contempt"))
    return dataclasses.replace(kept, classes=labels.EMOTIONS_7, soft_labels=None)


def score(name: str) -> dict:
    loaded = models.load_model(name)
    size, channels = loaded.input_size[0], loaded.channels
    ferplus = data.load_split("ferplus", f"{SHARED}/data/ferplus", "test", size, channels)
    fer2013 = data.load_split("fer2013", f"{SHARED}/data/fer2013", "test", size, channels)
    rows = {"ferplus_test": evaluate_split(loaded.model, ferplus, loaded.labels),
            "ferplus_test_7_shared": evaluate_split(loaded.model, seven_shared(ferplus), loaded.labels),
            "fer2013_test": evaluate_split(loaded.model, fer2013, loaded.labels)}
    contempt = rows["ferplus_test"]["per_class"].get("contempt", {}).get("f1")
    return {"model": name, "classes": len(loaded.labels), "contempt_f1": contempt,
            **{key: {k: round(float(v[k]), 4) for k in ("accuracy", "balanced_accuracy", "macro_f1")}
               | {"faces": int(np.sum(v["confusion"]))} for key, v in rows.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["emolib-fer2013", "emolib-ferplus"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [score(name) for name in args.models]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| model | classes | FER+ test acc. / macro-F1 | FER+ test, 7 shared: acc. / macro-F1 | "
          "FER2013 test acc. / macro-F1 | contempt F1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        cells = [f"{r[k]['accuracy']:.4f} / {r[k]['macro_f1']:.4f} ({r[k]['faces']:,})"
                 for k in ("ferplus_test", "ferplus_test_7_shared", "fer2013_test")]
        contempt = "–" if r["contempt_f1"] is None else f"{r['contempt_f1']:.3f}"
        print(f"| {r['model']} | {r['classes']} | " + " | ".join(cells) + f" | {contempt} |")


if __name__ == "__main__":
    main()
