"""Ship a trained tracker: tracker.pt (policy only) and card.json (clips, commands, budget, figures).

python scripts/release_tracker.py --checkpoint runs/tracker/checkpoints/last.pt \
    --evaluation runs/tracker_eval/results.json --budget-min 45 \
    --command "python scripts/train_tracker.py --motion_file ... --out runs/tracker --time-budget 45" \
    --out motion_vqvae/assets/tracker

--evaluation is an evaluate_tracker.py results.json on the tracker's own clips; its figures go on the card.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from motion_vqvae.cli import cli_main, setup_logging
from motion_vqvae.tracking.release import ship_tracker


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="tracker training checkpoint")
    parser.add_argument("--evaluation", type=Path, required=True, help="evaluate_tracker.py results.json")
    parser.add_argument(
        "--command", action="append", required=True, help="a command that trained it (repeat, in order)"
    )
    parser.add_argument("--budget-min", type=float, required=True, help="total training minutes")
    parser.add_argument("--out", type=Path, required=True, help="release folder")
    args = parser.parse_args(argv)
    setup_logging()
    card = ship_tracker(args.checkpoint, args.evaluation, args.out, args.command, args.budget_min)
    shown = {k: card["figures"][k] for k in ("survival_share", "mpjpe_local_mm")}
    logging.getLogger("release_tracker").info("released %s: %s", args.out, json.dumps(shown))
    return 0
