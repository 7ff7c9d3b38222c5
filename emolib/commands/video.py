"""``emolib video FILE [--every N | --fps F] --out timeline.csv [--plot PNG] [--smooth K] [--resume]``:
emotions over time, one row per tracked face per sampled frame."""

from __future__ import annotations

import sys
from pathlib import Path

from emolib import predict, video


def run(args) -> int:
    """Write the timeline CSV (and plot); print the per-track summary. 130 when interrupted."""
    capture, _ = video.open_video(args.file)  # a bad file is refused before the model loads
    capture.release()
    predictor = predict.EmotionPredictor(model=args.model, detector=args.detector, runtime=args.runtime)
    try:
        timeline = video.analyze_video(args.file, predictor, every=args.every, fps=args.fps, out=args.out,
                                       resume=args.resume, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"\nemolib video: interrupted; the rows written so far are in {args.out} "
              "(add --resume to go on from there)", file=sys.stderr)
        return 130
    shown = video.smooth(timeline, args.smooth) if args.smooth and len(timeline) else timeline
    if args.plot:
        if len(shown):
            video.plot_timeline(shown, args.plot, title=Path(args.file).name)
        else:
            print("emolib video: no face found: no plot written", file=sys.stderr)
    frames = timeline["frame"].nunique()
    print(f"{args.file}: {len(timeline)} face rows in {frames} sampled frame(s) with faces, "
          f"{timeline['track'].nunique()} track(s) → {args.out}")
    if len(shown):
        print(video.summary(shown).to_string())
    return 0
