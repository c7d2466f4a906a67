"""PPO in token space on G1Kinematic-v0 against random-token baselines, optionally guided by a prior.

python scripts/train_policy.py --tokenizer runs/g1/checkpoints/best.pt --timesteps 200000 --out runs/policy
python scripts/train_policy.py --tokenizer TOK --prior runs/prior/checkpoints/best.pt --prior-mode constrain

The policy chooses the coarse level of every body part (one token per part). With --prior, the finer levels
are the prior's most likely codes given the policy's choice; without one, only the coarse level is decoded.
--levels K decodes the first K levels. --prior-mode bonus adds beta * log p_prior(step | context) to the
reward; constrain lets the policy choose only inside the prior's top-p set of each chosen stream
(MaskablePPO; --prior-mask bigram takes the sets from a bigram instead, the control); none only scores. With
--prior, results.json adds the returns with and without the mask, random_in_mask_mean_return (a uniform
choice inside the sets), allowed_set_size_mean, prior_nll_bits_per_token and jerk_rad_s3. The policy scores
each token by what it does when decoded (--action-head effect, the default; see
motion_vqvae/envs/token_policy.py), or gives each token id a free logit (--action-head categorical).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from motion_vqvae.cli import cli_main
from motion_vqvae.envs.policy_training import ACTION_HEADS, PolicyConfig, train_policy
from motion_vqvae.envs.prior_guidance import MASK_MODELS, PRIOR_MODES, PriorGuidance
from motion_vqvae.threads import ThreadChoice


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True, help="checkpoint .pt or ONNX export directory")
    parser.add_argument("--timesteps", type=int, default=PolicyConfig.timesteps, help="training tokens")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--time-budget", type=float, metavar="MINUTES", help="stop training after this long")
    parser.add_argument("--num-envs", type=int, default=PolicyConfig.num_envs)
    parser.add_argument("--eval-episodes", type=int, default=PolicyConfig.eval_episodes)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--levels",
        type=int,
        default=None,
        help="multi-level tokenizers: decode the first K levels (default: all with --prior, else 1)",
    )
    parser.add_argument("--prior", type=Path, help="prior checkpoint trained on this tokenizer's tokens")
    parser.add_argument("--prior-mode", choices=PRIOR_MODES, default="none", help="how the prior guides PPO")
    parser.add_argument("--prior-beta", type=float, default=PriorGuidance.beta, help="bonus per nat")
    parser.add_argument("--prior-top-p", type=float, default=PriorGuidance.top_p, help="constrain: set mass")
    parser.add_argument(
        "--prior-mask", choices=MASK_MODELS, default=PriorGuidance.mask_model, help="constrain: sets' source"
    )
    parser.add_argument(
        "--env",
        default=PolicyConfig.env_id,
        choices=("motion_vqvae/G1Kinematic-v0", "motion_vqvae/G1TokenTrack-v0"),
        help="inner environment: kinematic playback, or physics under the shipped tracker",
    )
    parser.add_argument(
        "--action-head",
        choices=ACTION_HEADS,
        default=PolicyConfig.action_head,
        help="effect: score tokens by their decoded effect (default); categorical: one free logit per token",
    )
    args = parser.parse_args(argv)
    ThreadChoice(1)  # small policy and decoder nets step fastest on one thread (the script sets it)
    if args.prior_mode != "none" and args.prior is None:
        parser.error(f"--prior-mode {args.prior_mode} needs --prior PRIOR")
    if args.levels is not None and args.levels > 1 and args.prior is None:
        parser.error(
            f"--levels {args.levels} decodes levels the policy does not choose (it picks the coarse one); "
            "they come from a prior: pass --prior PRIOR, or drop --levels"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = PolicyConfig(
        env_id=args.env,
        action_head=args.action_head,
        timesteps=args.timesteps,
        num_envs=args.num_envs,
        eval_episodes=args.eval_episodes,
        seed=args.seed,
        levels=args.levels,
        time_budget_s=args.time_budget * 60 if args.time_budget else None,
        prior=None
        if args.prior is None
        else PriorGuidance(args.prior, args.prior_mode, args.prior_beta, args.prior_top_p, args.prior_mask),
    )
    results = train_policy(args.tokenizer, args.out, cfg)
    line = f"mean_return {results['mean_return']:.2f}, random {results['random_token_mean_return']:.2f}"
    if "random_in_mask_mean_return" in results:
        line += f", random in mask {results['random_in_mask_mean_return']:.2f}"
    print(line)
    return 0
