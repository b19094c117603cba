"""MRQReplayBuffer: the batch contract, reward statistics, terminal flag, construction."""

import pytest
import torch
from replay_fixtures import Stream, to_td
from torchrl.data import LazyTensorStorage

from torchrl_mst.data import (
    MRQReplayBuffer,
    PrioritizedSubTrajectorySampler,
    make_mrq_replay_buffer,
)


def filled(capacity=32, horizon=5, batch_size=8, seed=0, episodes=((12, "truncated"), (9, None))):
    stream = Stream()
    for length, end in episodes:
        stream.episode(length, end)
    rb = make_mrq_replay_buffer(capacity, horizon=horizon, batch_size=batch_size, seed=seed)
    rb.extend(to_td(stream.steps))
    return rb, stream


def test_defaults_follow_mrq():
    rb = make_mrq_replay_buffer()
    assert isinstance(rb, MRQReplayBuffer)
    assert isinstance(rb.sampler, PrioritizedSubTrajectorySampler)
    assert (rb.storage.max_size, rb.horizon, rb.batch_size) == (1_000_000, 5, 256)
    assert rb.sampler.default_priority == 1.0


def test_sampled_batch_has_every_stored_key_with_window_shapes():
    rb, _ = filled(batch_size=8)
    batch = rb.sample()
    assert batch.batch_size == (8, 5)
    shapes = {k: tuple(v.shape) for k, v in batch.items(True, True)}
    assert shapes == {
        "observation": (8, 5, 3),
        "action": (8, 5, 2),
        "is_init": (8, 5, 1),
        "step_count": (8, 5, 1),
        ("collector", "traj_ids"): (8, 5),
        ("next", "observation"): (8, 5, 3),
        ("next", "reward"): (8, 5, 1),
        ("next", "terminated"): (8, 5, 1),
        ("next", "truncated"): (8, 5, 1),
        ("next", "done"): (8, 5, 1),
        ("next", "step_count"): (8, 5, 1),
        "index": (8, 5),
        "validity_mask": (8, 5),
    }
    assert batch["index"].dtype == torch.int64 and batch["validity_mask"].dtype == torch.bool
    # rows are consecutive transitions: next observation of step k is the observation of k+1
    t = batch["observation"][..., 0]
    assert torch.equal(t[:, 1:], t[:, :-1] + 1)
    assert torch.equal(batch["index"], t.long())


def test_reward_abs_mean_is_over_the_stored_transitions_only():
    stream = Stream()
    rb = make_mrq_replay_buffer(20, horizon=3, batch_size=4, seed=0)
    for length in (7, 9, 11):  # 27 steps: the first 7 are overwritten
        rb.extend(to_td(stream.episode(length, "truncated")))
        stored = stream.steps[-20:]
        expected = sum(abs(s.reward) for s in stored) / len(stored)
        assert rb.reward_abs_mean() == pytest.approx(expected, rel=1e-12)


def test_reward_abs_mean_of_an_empty_buffer_raises():
    with pytest.raises(RuntimeError, match="empty"):
        make_mrq_replay_buffer(10, horizon=2, batch_size=2, seed=0).reward_abs_mean()


def test_any_terminal_latches_even_after_the_terminal_is_overwritten():
    stream = Stream()
    rb = make_mrq_replay_buffer(8, horizon=2, batch_size=2, seed=0)
    rb.extend(to_td(stream.episode(6, "truncated")))
    assert rb.any_terminal() is False
    rb.add(to_td(stream.episode(1, "terminated"))[0])
    assert rb.any_terminal() is True
    rb.extend(to_td(stream.episode(10, "truncated")))  # terminal slot overwritten
    assert not rb.storage[:]["next", "terminated"].any()
    assert rb.any_terminal() is True


def test_seed_none_is_reproducible_under_torch_manual_seed():
    def draws():
        torch.manual_seed(7)
        rb, _ = filled(seed=None)
        return rb.sample()["index"]

    assert torch.equal(draws(), draws())


def test_seeds_change_the_draws():
    a, _ = filled(seed=1, batch_size=64)
    b, _ = filled(seed=2, batch_size=64)
    assert not torch.equal(a.sample()["index"], b.sample()["index"])


def test_construction_errors():
    with pytest.raises(TypeError, match="builds its own sampler"):
        MRQReplayBuffer(10, sampler=PrioritizedSubTrajectorySampler(10))
    with pytest.raises(TypeError, match="builds its own generator"):
        MRQReplayBuffer(10, generator=torch.Generator())
    with pytest.raises(ValueError, match="max_size"):
        MRQReplayBuffer(10, storage=LazyTensorStorage(20))
    with pytest.raises(ValueError, match="batch_size"):
        MRQReplayBuffer(10, batch_size=0)


def test_transitions_without_termination_flags_are_rejected_at_write():
    td = to_td(Stream().episode(4, None)).exclude(("next", "terminated"))
    rb = make_mrq_replay_buffer(10, horizon=2, batch_size=2, seed=0)
    with pytest.raises(KeyError, match="terminated"):
        rb.extend(td)


def test_batched_collector_output_must_be_flattened():
    td = to_td(Stream().episode(6, None)).reshape(2, 3)
    rb = make_mrq_replay_buffer(10, horizon=2, batch_size=2, seed=0)
    with pytest.raises(ValueError, match=r"reshape\(-1\)"):
        rb.extend(td)


def test_windows_from_a_real_collector_stay_inside_episodes():
    from replay_fixtures import Step, brute_force_eligible
    from torchrl.collectors import Collector
    from torchrl.envs import GymEnv, InitTracker, StepCounter, TransformedEnv
    from torchrl.envs.utils import RandomPolicy

    env = TransformedEnv(GymEnv("Pendulum-v1"), StepCounter(max_steps=13))
    env.append_transform(InitTracker())
    env.set_seed(0)
    collector = Collector(env, RandomPolicy(env.action_spec), frames_per_batch=17, total_frames=170)
    rb = make_mrq_replay_buffer(60, horizon=5, batch_size=64, seed=0)
    steps = []
    try:
        for data in collector:
            rb.extend(data.reshape(-1))
            for row in data.reshape(-1).unbind(0):
                steps.append(
                    Step(
                        t=len(steps),
                        traj=int(row["collector", "traj_ids"]),
                        pos=int(row["step_count"]),
                        terminated=bool(row["next", "terminated"]),
                        truncated=bool(row["next", "truncated"]),
                        reward=float(row["next", "reward"]),
                    )
                )
            expected = brute_force_eligible(steps, 60, 5)
            assert torch.equal(rb.sampler.eligible(rb.storage), expected)
    finally:
        collector.shutdown()
    assert sum(s.truncated for s in steps) >= 10  # 13-step episodes over 170 frames
    batch = rb.sample()
    traj, count = batch["collector", "traj_ids"], batch["step_count"].squeeze(-1)
    assert (traj == traj[:, :1]).all()
    assert torch.equal(count, count[:, :1] + torch.arange(5))
    assert not batch["next", "truncated"][:, :-1].any()
