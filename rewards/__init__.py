"""Reward functions with declared ranges, and a registry that builds them by name."""

from rewards.base import REWARDS, Reward, build_reward, build_rewards

__all__ = ["REWARDS", "Reward", "build_reward", "build_rewards"]
