"""Feed motion tokens into Isaac Gym: a BatchedTokenDecoder drives DOF position targets on the GPU.

Import this module only where Isaac Gym is installed (``motion_vqvae.envs`` never imports it)::

    from motion_vqvae.envs.batched import BatchedTokenDecoder
    from motion_vqvae.envs.isaacgym_adapter import IsaacGymTokenDriver

    decoder = BatchedTokenDecoder.from_checkpoint("best.pt", num_envs, device="cuda:0")
    driver = IsaacGymTokenDriver(gym, sim, decoder)
    driver.reset(all_env_ids, dof_pos)            # every env starts from its measured pose
    while True:
        if driver.needs_tokens:
            driver.set_tokens(policy(obs))         # [num_envs] (or [num_envs, S]) ids
        driver.apply_next_frame()                  # one motion frame -> set_dof_position_target_tensor
        gym.simulate(sim); gym.fetch_results(sim, True)   # physics substeps per frame are the caller's
        driver.reset(done_env_ids, dof_pos[done_env_ids])  # new episodes ramp from the measured pose

The asset's DOFs must be in the tokenizer's simulator order (the MJCF/URDF order of the G1). Type-checked
against ``isaacgym-stubs`` by ``scripts/typecheck_isaacgym.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from motion_vqvae.envs.batched import BatchedTokenDecoder
from motion_vqvae.errors import InvalidValue

if TYPE_CHECKING:
    from isaacgym import gymapi


class IsaacGymTokenDriver:
    """Holds one decoded token's frames per env and writes them, frame by frame, as DOF position targets."""

    def __init__(self, gym: gymapi.Gym, sim: gymapi.Sim, decoder: BatchedTokenDecoder) -> None:
        from isaacgym import gymtorch

        self._gymtorch = gymtorch
        self.gym, self.sim, self.decoder = gym, sim, decoder
        envs = gym.get_env_count(sim)
        dofs = gym.get_sim_dof_count(sim)
        if envs != decoder.num_envs or dofs != envs * decoder.num_dof:
            raise InvalidValue(
                f"IsaacGymTokenDriver: the sim has {envs} envs x {dofs // max(envs, 1)} DOFs, the decoder "
                f"{decoder.num_envs} envs x {decoder.num_dof} joints; build the decoder with num_envs={envs} "
                "and an asset whose DOFs are the tokenizer's joints"
            )
        self.targets = torch.zeros(envs, decoder.num_dof, device=decoder.device)  # (N, dof)
        self._frames = torch.zeros(envs, decoder.frames_per_token, decoder.num_dof, device=decoder.device)
        self._next = decoder.frames_per_token  # index of the next frame to apply; fpt = token used up

    @property
    def needs_tokens(self) -> bool:
        """True when every frame of the current tokens has been applied."""
        return self._next >= self.decoder.frames_per_token

    def set_tokens(self, tokens: torch.Tensor) -> None:
        """Decode one token per env (``[num_envs]`` or ``[num_envs, S]``); the next calls apply its frames."""
        self._frames = self.decoder.step(tokens)  # (N, fpt, dof)
        self._next = 0

    def apply_next_frame(self) -> None:
        """Write the next decoded frame of every env as DOF position targets."""
        if self.needs_tokens:
            raise RuntimeError("IsaacGymTokenDriver: all frames applied; call set_tokens(tokens) first")
        self.targets.copy_(self._frames[:, self._next])
        self.gym.set_dof_position_target_tensor(self.sim, self._gymtorch.unwrap_tensor(self.targets))
        self._next += 1

    def reset(self, env_ids: torch.Tensor, current: torch.Tensor) -> None:
        """Fresh decoder context for these envs, ramping from their measured DOF positions ``current``.

        ``current`` is ``[len(env_ids), dof]`` (e.g. rows of the wrapped ``dof_state`` position column).
        """
        if env_ids.numel():
            self.decoder.reset(env_ids, current)
