"""Physics tracking: a G1 controller that executes reference motion (clips or decoded tokens) in MuJoCo.

The training side of issue 22: ``G1Track-v0`` (:mod:`.env`), its batched core (:mod:`.batch`), the reference
(:mod:`.reference`), BeyondMimic's reward terms (:mod:`.rewards`), armature gains (:mod:`.gains`) and PPO
(:mod:`.ppo`, :mod:`.train`). The robot runs the exported tracker with ``sim2real.TrackerPolicy``, which
builds the same observation (:mod:`sim2real.tracker_obs`).
"""
