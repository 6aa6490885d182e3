"""The reward registry: built-in rewards by name, clear errors, declared ranges."""

import pytest

from rewards import REWARDS, Reward, build_reward, build_rewards

BUILT_IN = {"toolcall_format": (0.0, 1.0), "toolcall_correctness": (-3.0, 3.0), "summary_quality": (0.0, 1.0),
            "summary_conciseness": (0.0, 1.0), "llm_judge": (0.0, 10.0)}


@pytest.mark.parametrize("name, bounds", sorted(BUILT_IN.items()))
def test_built_in_rewards_are_registered_with_ranges(name, bounds):
    reward = build_reward(name)
    assert isinstance(reward, Reward) and (reward.min, reward.max) == bounds
    assert REWARDS.canonical(name) == name


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown reward 'rogue'; valid names: .*summary_quality.*toolcall_format"):
        build_reward("rogue")


def test_build_rewards_from_config_entries():
    rewards = build_rewards(["toolcall_format", {"name": "summary_conciseness", "budget_words": 12},
                             {"name": "rouge", "rouge_types": ["rougeL"]}])
    assert [r.name for r in rewards] == ["toolcall_format", "summary_conciseness", "summary_quality"]
    assert rewards[1].budget_words == 12 and rewards[2].rouge.rouge_types == ("rougeL",)
    with pytest.raises(TypeError, match="unexpected keyword argument 'budget'"):
        build_rewards([{"name": "summary_conciseness", "budget": 12}])


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 completions but 1 records"):
        build_reward("summary_conciseness")(["a", "b"], [{"ground_truth": "x"}])


class _Unbounded(Reward):
    name = "unbounded"

    def _score_one(self, completion, record):
        return float(completion)


class _Bounded(_Unbounded):
    name, min, max = "bounded", -1.0, 1.0


def test_a_reward_must_declare_its_range():
    import pytest

    with pytest.raises(ValueError, match="declares no range: set the class attributes min and max"):
        _Unbounded()(["1"], [{}])
    REWARDS.register("unbounded_test")(_Unbounded) if "unbounded_test" not in REWARDS else None
    with pytest.raises(ValueError, match="declares no range"):
        build_reward("unbounded_test")
    r = build_reward("unbounded_test", min=-5, max=5)  # told in config
    assert (r.min, r.max) == (-5.0, 5.0)
    with pytest.raises(ValueError, match="invalid range"):
        build_reward("unbounded_test", min=1, max=1)


def test_out_of_range_scores_are_clipped_and_counted():
    r = _Bounded()
    assert r(["-5", "-1", "0.5", "5", "nan"], [{}] * 5)[:4] == [-1.0, -1.0, 0.5, 1.0]
    assert r.take_clipped() == 2 and r.take_clipped() == 0
    assert r.take_failures() == 0
