"""The ``emolib`` command line: every subcommand's arguments.

``train``'s model flags are generated from ``TrainConfig``'s fields (:func:`add_config_arguments`);
dataset and detector choices come from their registries. Arguments fed by a registry or by
``TrainConfig`` are declared on first use (:class:`Subcommand`), so ``emolib --help`` and
``emolib predict`` import neither Keras nor the dataset formats.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from emolib import backend

MODEL_HELP = ("a shipped model's name (e.g. emolib-fer2013), a model directory, .keras file or model card "
              "(default: the shipped default)")


class Subcommand(argparse.ArgumentParser):
    """A subcommand's parser whose arguments may be declared by a function run on first use (parsing
    or help): arguments fed by the dataset registry or generated from ``TrainConfig`` import those
    modules only when their subcommand is used, so ``emolib --help`` and ``emolib predict`` stay light."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._declare_later: list = []

    def declare(self, add_arguments) -> None:
        """Run ``add_arguments(self)`` before this parser is first used."""
        self._declare_later.append(add_arguments)

    def _declare_pending(self) -> None:
        while self._declare_later:
            self._declare_later.pop(0)(self)

    def parse_known_args(self, args=None, namespace=None):
        self._declare_pending()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._declare_pending()
        return super().format_help()


#: the format options that ``emolib data``, ``train`` and ``evaluate`` take as flags
FORMAT_OPTIONS = ("classes", "margin", "square", "align", "boxes")


def format_options(args: argparse.Namespace) -> dict:
    """The format options given on a command line (``--classes 7``, ``--margin 0.1`` …), as keywords
    of :func:`emolib.data.load_split`; the ones not given are left out (the format's defaults apply)."""
    options = {name: getattr(args, name) for name in FORMAT_OPTIONS if getattr(args, name, None) is not None}
    if "classes" in options:  # a number is a class count (affectnet 7|8), else class folder names
        text = options["classes"]
        options["classes"] = int(text) if text.isdigit() else text.split(",")
    return options


class _ConfigFlag(argparse.Action):
    """Store a TrainConfig flag's value and note it as given (a resume changes only what is given)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given_config = [*getattr(namespace, "given_config", []), self.dest]


_FLAG_TYPES = {"int": int, "float": float, "str": str}


def _flag_type(parse):
    """``parse`` (text → value, ValueError with a message) as an argparse type that shows the message."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = parse.__name__
    return convert


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per :class:`~emolib.train.TrainConfig` field to ``parser``, with its default and help."""
    from emolib.train import TrainConfig

    for item in fields(TrainConfig):
        options = {key: value for key, value in item.metadata.items() if key != "flag"}
        options["help"] = f"{options.get('help', '')} (default: {item.default})"
        if item.type == "bool":
            options.update(nargs=0, const=True)
        elif "type" in options:
            options["type"] = _flag_type(options["type"])
        else:
            kind = next((part for part in item.type.split(" | ") if part in _FLAG_TYPES), "str")
            options["type"] = _FLAG_TYPES[kind]
        flag = item.metadata.get("flag", "--" + item.name.replace("_", "-"))
        parser.add_argument(flag, dest=item.name, default=item.default, action=_ConfigFlag, **options)


def config_from_arguments(args: argparse.Namespace):
    """The :class:`~emolib.train.TrainConfig` of parsed ``emolib train`` flags."""
    from emolib.train import TrainConfig

    return TrainConfig(**{item.name: getattr(args, item.name) for item in fields(TrainConfig)})


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    from emolib.data import list_datasets

    parser.add_argument("--dataset", required=True, choices=list_datasets(), help="dataset format")
    parser.add_argument("--data", required=True, help="dataset root folder (or fer2013.csv)")
    formats = parser.add_argument_group("format options (only the formats that take them)")
    formats.add_argument("--classes", help="affectnet: 7 or 8 (default 8; 7 leaves contempt out); folders: "
                                           "comma-separated class folder names")
    formats.add_argument("--margin", type=float, help="affectnet, expw, folders with --boxes: share of the "
                                                      "box added on each side (default 0)")
    formats.add_argument("--square", action=argparse.BooleanOptionalAction,
                         help="affectnet, expw, folders with --boxes: widen the box to a square "
                              "(default: yes)")
    formats.add_argument("--align", action="store_true", default=None,
                         help="affectnet: level the eye line from the landmarks")
    formats.add_argument("--boxes", help="folders: CSV file path,x,y,w,h (paths relative to --data): crop "
                                         "each listed image to its face box")


def _train_arguments(train: argparse.ArgumentParser) -> None:
    from emolib.data import VAL_FRACTION

    _dataset_arguments(train)
    train.add_argument("--name", help="run name (default: backbone)")
    add_config_arguments(train)  # one flag per TrainConfig field
    train.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    train.add_argument("--val-split", help="select on the dataset's own split of this name (e.g. ferplus "
                       "valid) instead of carving --val-fraction from train")
    train.add_argument("--max-per-class", type=int)
    train.add_argument("--split-seed", type=int,
                       help="seed of the val carve (default: --seed); keep it to train ensemble members "
                       "that share one val split")
    train.add_argument("--output", help="parent of the run directory (default: $EMOLIB_RUNS, else "
                       "results/runs in the project)")
    train.add_argument("--resume", help="run directory of an interrupted run to finish")
    train.add_argument("--json", action="store_true")


def _evaluate_arguments(evaluate: argparse.ArgumentParser) -> None:
    evaluate.add_argument("--model", help=MODEL_HELP)
    _dataset_arguments(evaluate)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--flip-tta", action="store_true", help="average with the mirrored face")
    evaluate.add_argument("--batch-size", type=int, default=None,
                          help="faces per model call at most (default 256; fewer for large faces)")
    evaluate.add_argument("--json", action="store_true")


def _data_arguments(data: argparse.ArgumentParser) -> None:
    _dataset_arguments(data)
    data.add_argument("--json", action="store_true", help="print JSON")


def _runtime_argument(parser: argparse.ArgumentParser) -> None:
    from emolib import runtimes

    parser.add_argument("--runtime", choices=[runtimes.AUTO, *runtimes.list_runtimes()],
                        default=runtimes.AUTO,
                        help="what runs the model: onnx (no TensorFlow imported), keras, or auto (onnx when "
                             "onnxruntime is installed and the model has model.onnx)")


def build_parser() -> argparse.ArgumentParser:
    """The ``emolib`` parser (data, train and evaluate declare their arguments on first use)."""
    from emolib.detect import list_detectors
    from emolib.evaluate import TARGET_PRECISION
    from emolib.predict import CHUNK, FALLBACKS

    parser = argparse.ArgumentParser(prog="emolib", description="Facial-emotion-recognition workbook.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Subcommand)
    sub.add_parser("data", help="summarise a dataset: per split, per class counts, skipped files"
                   ).declare(_data_arguments)
    sub.add_parser("train", help="train a model and write a run directory").declare(_train_arguments)
    sub.add_parser("evaluate", help="evaluate a saved model on a dataset split").declare(_evaluate_arguments)

    adjust = sub.add_parser(
        "adjust", help="fit a logit adjustment (rare classes) on a finished run's val split; new run")
    adjust.add_argument("run_dir", help="a finished run directory")
    adjust.add_argument("--output", help="where the adjusted run goes (default: beside the run)")

    calibrate = sub.add_parser(
        "calibrate", help="fit a temperature (calibrated confidence) and the 'not sure' threshold on the "
                          "val split of a finished run or a model directory")
    calibrate.add_argument("model", help="a finished run directory, a model directory or a shipped "
                                         "model's name")
    calibrate.add_argument("--target-precision", type=float, default=TARGET_PRECISION,
                           help="accuracy of the answers kept above the 'not sure' threshold, on val "
                                "(default %(default)s)")
    calibrate.add_argument("--data", help="the dataset folder, where it moved since training (default: the "
                                          "recorded one, else the shared data)")
    calibrate.add_argument("--output", help="where the calibrated model goes (default: beside it, named "
                                            "<name>-calibrated; a model directory may name itself)")

    average = sub.add_parser(
        "average", help="average the weights of a finished run's last epochs (SWA), or of several runs' "
                        "models fine-tuned from one model (a soup); new run")
    average.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                         help="one finished run trained with --keep-snapshots (with --last), or several "
                              "trained with --init-from one model and the same --split-seed")
    average.add_argument("--last", type=int, help="how many of the one run's last epochs to average")
    average.add_argument("--output", help="where the averaged run goes (default: beside the run)")

    ensemble = sub.add_parser(
        "ensemble", help="average the probabilities of finished runs with one val split; new run")
    ensemble.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                          help="finished runs (e.g. trained with other --seed, the same --split-seed)")
    ensemble.add_argument("--output", help="where the ensemble run goes (default: beside the first run)")

    export = sub.add_parser("export", help="copy a finished run into a model directory (model, card, plots); "
                                          "with --format onnx, write a model as ONNX")
    export.add_argument("source", help="a finished run directory; with --format onnx, a model directory, "
                                       ".keras file or shipped model's name")
    export.add_argument("--format", choices=["keras", "onnx"], default="keras",
                        help="keras: the run as a model directory (--to needed); onnx: model.onnx and its "
                             "card, checked against Keras on FER2013 test faces")
    export.add_argument("--to", "--out", dest="to",
                        help="keras: model directory to write, e.g. emolib/shipped_models/emolib-fer2013; "
                             "onnx: a directory or .onnx path (default: beside model.keras)")
    export.add_argument("--check-faces", type=int, metavar="N",
                        help="onnx: FER2013 test faces (a seeded sample) to compare it with Keras on "
                             "(default: export.CHECK_FACES)")
    export.add_argument("--name", help="model name in the card (default: the folder's name)")
    export.add_argument("--training-command", action="append", dest="training_commands",
                        help="a command that trained the run (repeatable)")

    predict = sub.add_parser("predict", help="detect faces and classify their emotions")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--model", help=MODEL_HELP)
    predict.add_argument("--detector", choices=list_detectors(), help="default: yunet if available")
    predict.add_argument("--whole-image", action="store_true", help="each image is already one face crop")
    predict.add_argument("--fallback", choices=FALLBACKS, default="none",
                         help="whole: classify a small image in which no face is found as one face crop "
                         '(reported with "detector": "none")')
    predict.add_argument("--flip-tta", action="store_true")
    _runtime_argument(predict)
    predict.add_argument("--explain", metavar="OUT_DIR",
                         help="also write OUT_DIR/<image>.png: each face's saliency map over the image")
    predict.add_argument("--json", action="store_true")
    predict.add_argument("--out", metavar="FILE", help="stream one record per image into FILE (.jsonl, or "
                         ".parquet: a folder of parts); images already in it are skipped. Needed for folders")
    predict.add_argument("--recursive", action="store_true", help="with --out: images in sub-folders too")
    predict.add_argument("--chunk", type=int, default=CHUNK,
                         help="with --out: images per model call and write (default: %(default)s)")
    predict.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                         help="with --out: shard over Ray Data (a local Ray, or the cluster at ADDRESS / "
                         "$RAY_ADDRESS; the images must be on storage every node sees)")
    predict.add_argument("--workers", type=int, default=1,
                         help="with --ray: predictor actors (one model and detector each)")

    video = sub.add_parser("video", help="emotions over time: tracked faces of a video's sampled frames")
    video.add_argument("file", help="a video file (mp4, avi, mkv, webm, y4m …)")
    sampling = video.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=int, metavar="N", help="analyse every N-th frame")
    sampling.add_argument("--fps", type=float, metavar="F", help="analyse about F frames per second")
    video.add_argument("--out", required=True, help="timeline CSV: one row per face per sampled frame")
    video.add_argument("--plot", metavar="PNG", help="also draw the timeline per track")
    video.add_argument("--smooth", type=int, metavar="K",
                       help="moving average of K sampled frames per track, for the plot and summary")
    video.add_argument("--resume", action="store_true", help="keep the rows already in --out and go on")
    video.add_argument("--model", help=MODEL_HELP)
    video.add_argument("--detector", choices=list_detectors(), help="default: yunet if available")
    _runtime_argument(video)
    video.add_argument("--quiet", action="store_true", help="no progress bar")

    experiments = sub.add_parser("experiments", help="run a parameter grid of notebooks; compare runs")
    experiments_sub = experiments.add_subparsers(dest="action", required=True)
    run = experiments_sub.add_parser("run", help="execute the notebooks of a YAML grid with papermill")
    run.add_argument("grid", help="YAML grid file, e.g. experiments/quick.yaml")
    run.add_argument("--output", default="results/experiments")
    run.add_argument("--kernel", default="python3")
    run.add_argument("--force", action="store_true", help="re-run finished runs too")
    run.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                     help="run each pending run as a Ray task: a local Ray, or the cluster at ADDRESS / "
                     "$RAY_ADDRESS (--output must be on storage every node sees)")
    run.add_argument("--jobs", type=int, help="with --ray: at most this many runs at once")
    run.add_argument("--num-cpus", type=float,
                     help="with --ray: CPUs of each run (over the grid's resources; default 1)")
    run.add_argument("--num-gpus", type=float,
                     help="with --ray: GPUs of each run (over the grid's resources)")
    summary = experiments_sub.add_parser("summary", help="print and save the comparison table of runs")
    summary.add_argument("runs", nargs="*",
                         help="run directories or folders holding them (default: $EMOLIB_RUNS or "
                         "results/runs, and results/experiments)")
    summary.add_argument("--save", help="write the table to this .csv or .md file")
    summary.add_argument("--by-idea", action="store_true",
                         help="one row per idea (runs that differ only in their seed): mean ± sd over seeds")
    summary.add_argument("--figure", help="also draw the ideas' scores with error bars into this .png")
    collect = experiments_sub.add_parser(
        "collect", help="copy the small outputs of finished runs (no weights, no checkpoints) for committing")
    collect.add_argument("source", help="a grid's output folder, e.g. ~/emolib-runs/experiments/study")
    collect.add_argument("destination", help="e.g. results/study/runs")

    serve = sub.add_parser("serve", help="REST API: POST /predict, GET /test, GET /health")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5000)
    serve.add_argument("--model", help=MODEL_HELP)
    serve.add_argument("--detector", choices=list_detectors())
    _runtime_argument(serve)
    serve.add_argument("--cors-origin", action="append", dest="cors_origins", metavar="ORIGIN",
                       help="an origin browsers may call the API from, e.g. https://example.org (repeatable; "
                       "'*' for any); default: null (pages opened from disk) and http://localhost:* / "
                       "http://127.0.0.1:*")

    dash = sub.add_parser("dashboard", help="the dashboard for a room: one shared prediction API + Voilà "
                                            "with preheated, culled kernels (make dashboard)")
    dash.add_argument("--host", default="127.0.0.1",
                      help="Voilà's address: 127.0.0.1 (this machine only) or 0.0.0.0 (the room's machines; "
                           "the camera needs https there, see README)")
    dash.add_argument("--port", type=int, default=8866, help="Voilà's port (the URL to open)")
    dash.add_argument("--api-port", type=int, default=0,
                      help="the shared prediction API's loopback port (default: any free one)")
    dash.add_argument("--model", help=MODEL_HELP + "; default $EMOLIB_MODEL")
    dash.add_argument("--detector", choices=list_detectors(), help="the API's default face detector")
    _runtime_argument(dash)
    dash.add_argument("--cull-idle", type=int, default=900,
                      help="seconds after which an open but unused tab's kernel is shut down (0: no culling)")
    dash.add_argument("--cull-disconnected", type=int, default=45,
                      help="seconds after which an idle kernel whose page is gone is shut down")
    dash.add_argument("--cull-interval", type=int, default=10, help="seconds between two culler checks")
    dash.add_argument("--pool-size", type=int, default=10,
                      help="preheated kernels kept ready for new pages (a room's burst; ~75 MB each, idle)")
    dash.add_argument("--pool-refill-delay", type=float, default=30,
                      help="seconds before a page's preheated kernel is replaced (the burst is served first)")
    dash.add_argument("--token", help="a token viewers must give once per browser (open the URL with "
                                      "?token=TOKEN, or type it on the login page); default: none, anyone "
                                      "who reaches the port opens the page (README: what a viewer can do)")
    dash.add_argument("--in-process", action="store_true",
                      help="no shared API: every page's kernel loads the model itself")

    doctor = sub.add_parser("doctor", help="backend, devices (GPU yes/no), versions, data and model found")
    doctor.add_argument("--json", action="store_true", help="print JSON")

    keras_backend = sub.add_parser("backend", help="this environment's Keras backend and where it comes "
                                   "from; with NAME, record NAME as its backend")
    keras_backend.add_argument("name", nargs="?", choices=list(backend.BACKEND_LIBRARIES))
    return parser
