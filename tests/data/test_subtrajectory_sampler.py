"""PrioritizedSubTrajectorySampler: eligibility, sampling law, windows, priorities, resume.

Layout used by the hand-derived cases (H = 5, capacity 40), global steps in brackets:

    episode A: 8 steps  [0..7],   truncated at 7
    episode B: 6 steps  [8..13],  terminated at 13
    episode C: 2 steps  [14..15], terminated at 15
    episode D: 7 steps  [16..22], still running (newest transition: 22)

Eligible starts: A 0..3 (4..7 would run past the cut), B 8..13 and C 14..15 (windows
may run past a termination: padding), D 16..18 (19..22 would read past the cursor).
"""

import pytest
import torch
from replay_fixtures import Stream, brute_force_eligible, chi_square, chi_square_critical, to_td
from tensordict import TensorDict
from torchrl.data import LazyMemmapStorage, LazyTensorStorage, TensorDictReplayBuffer

from torchrl_mst.data import MRQReplayBuffer, PrioritizedSubTrajectorySampler

H = 5
LAYOUT_ELIGIBLE = [0, 1, 2, 3, *range(8, 14), 14, 15, 16, 17, 18]


def layout_stream() -> Stream:
    stream = Stream()
    stream.episode(8, "truncated")
    stream.episode(6, "terminated")
    stream.episode(2, "terminated")
    stream.episode(7, None)
    return stream


def layout_buffer(capacity=40, batch_size=64, seed=0, **kwargs) -> tuple[MRQReplayBuffer, Stream]:
    stream = layout_stream()
    rb = MRQReplayBuffer(capacity, horizon=H, batch_size=batch_size, seed=seed, **kwargs)
    rb.extend(to_td(stream.steps))
    return rb, stream


def check_windows(batch, stream: Stream, capacity: int) -> None:
    """Every row is the written history: consecutive steps of one episode, then padding."""
    written = len(stream.steps)
    t = batch["observation"][..., 0].long()
    mask = batch["validity_mask"]
    for row_t, row_mask in zip(t.tolist(), mask.tolist()):
        start = row_t[0]
        assert written - capacity <= start < written, "start not stored"
        assert row_mask[0]
        for k in range(1, H):
            if not row_mask[k - 1] or stream.steps[start + k - 1].terminated:
                assert not row_mask[k] and row_t[k] == row_t[k - 1], "padding repeats terminal"
            else:
                assert row_mask[k] and row_t[k] == start + k < written, "not consecutive/cursor"
                assert stream.steps[row_t[k]].traj == stream.steps[start].traj, "crossed episodes"
                assert not stream.steps[start + k - 1].truncated, "crossed a truncation"


class TestEligibility:
    def test_hand_derived_layout(self):
        rb, stream = layout_buffer()
        eligible = rb.sampler.eligible(rb.storage)
        assert eligible.nonzero().squeeze(-1).tolist() == LAYOUT_ELIGIBLE
        assert torch.equal(eligible, brute_force_eligible(stream.steps, 40, H))

    def test_truncation_excludes_the_last_horizon_minus_one_starts(self):
        stream = Stream()
        stream.episode(8, "truncated")
        stream.episode(H, None)
        rb = MRQReplayBuffer(32, horizon=H, batch_size=8, seed=0)
        rb.extend(to_td(stream.steps))
        eligible = rb.sampler.eligible(rb.storage).nonzero().squeeze(-1).tolist()
        # 0..3 fit inside the 8-step episode; 4..7 would cross the cut; the next
        # episode has exactly H steps written, so only its first step is a start.
        assert eligible == [0, 1, 2, 3, 8]

    def test_termination_keeps_every_start_eligible(self):
        stream = Stream()
        stream.episode(3, "terminated")
        rb = MRQReplayBuffer(16, horizon=H, batch_size=8, seed=0)
        rb.extend(to_td(stream.steps))
        assert rb.sampler.eligible(rb.storage).nonzero().squeeze(-1).tolist() == [0, 1, 2]

    def test_growing_episode_becomes_eligible_step_by_step(self):
        stream = Stream()
        rb = MRQReplayBuffer(16, horizon=H, batch_size=8, seed=0)
        for n in range(1, 9):
            rb.add(to_td(stream.episode(1, None))[0])
            eligible = rb.sampler.eligible(rb.storage).nonzero().squeeze(-1).tolist()
            assert eligible == list(range(max(0, n - H + 1)))

    def test_trajectory_ids_cut_flattened_multi_env_batches(self):
        # Two envs, [2, T] collector output flattened env-major: the seam between env 0's
        # last step and env 1's first step has no done flag, only a traj id change.
        a, b = Stream(), Stream()
        td_a = to_td(a.episode(6, None))
        td_b = to_td(b.episode(6, None))
        td_b["collector", "traj_ids"] += 1
        rb = MRQReplayBuffer(32, horizon=H, batch_size=128, seed=0)
        rb.extend(torch.stack([td_a, td_b]).reshape(-1))
        eligible = rb.sampler.eligible(rb.storage).nonzero().squeeze(-1).tolist()
        # env 0: 0, 1 (window 1..5 ends on the seam); env 1 (slots 6..11): 6, 7.
        assert eligible == [0, 1, 6, 7]
        traj = rb.sample()["collector", "traj_ids"]
        assert (traj == traj[:, :1]).all()

    def test_in_place_edit_is_seen_after_mark_update(self):
        rb, stream = layout_buffer()
        row = rb[2]
        row["next", "truncated"] = torch.ones(1, dtype=torch.bool)
        row["next", "done"] = torch.ones(1, dtype=torch.bool)
        rb[2] = row
        stream.steps[2].truncated = True
        rb.mark_update(torch.tensor([2]))
        eligible = rb.sampler.eligible(rb.storage)
        assert torch.equal(eligible, brute_force_eligible(stream.steps, 40, H))
        assert eligible[:8].nonzero().squeeze(-1).tolist() == [3]  # 0..2 now cross a cut


class TestSamplingLaw:
    def test_start_frequencies_are_proportional_to_priority_over_eligible_starts(self):
        capacity = 40
        rb, _ = layout_buffer(capacity, batch_size=256, seed=1)
        rb.sample()  # writes processed first: the priorities below go straight to the tree
        g = torch.Generator().manual_seed(5)
        priority = 1 + 4 * torch.rand(capacity, generator=g, dtype=torch.float64)
        rb.update_priority(torch.arange(capacity), priority)
        eligible = torch.zeros(capacity, dtype=torch.bool)
        eligible[LAYOUT_ELIGIBLE] = True
        counts = torch.zeros(capacity, dtype=torch.float64)
        for _ in range(50):  # 51,200 draws; the sampler alone (no storage gather)
            index, _ = rb.sampler.sample(rb.storage, 1024)
            counts += torch.bincount(index[:, 0], minlength=capacity)
        assert counts[~eligible].sum() == 0
        probs = torch.where(eligible, priority, 0.0)
        stat, dof = chi_square(counts, probs / probs.sum())
        assert stat < chi_square_critical(dof), (stat, dof)

    def test_sampling_mass_is_priority_times_eligibility(self):
        rb, _ = layout_buffer()
        rb.update_priority(torch.tensor([2, 5, 9]), torch.tensor([3.0, 7.0, 2.0]))
        mass = rb.sampler.sampling_mass(rb.storage)
        assert mass[2] == 3.0 and mass[5] == 0.0 and mass[9] == 2.0
        assert rb.sampler.priority(5) == 7.0  # kept although start 5 is ineligible


class TestWindows:
    def test_windows_follow_history_through_many_wraparounds(self):
        capacity = 23
        g = torch.Generator().manual_seed(0)
        stream = Stream()
        for _ in range(40):
            length = int(torch.randint(1, 12, (), generator=g))
            end = ["terminated", "truncated"][int(torch.randint(0, 2, (), generator=g))]
            stream.episode(length, end)
        stream.episode(4, None)
        rb = MRQReplayBuffer(capacity, horizon=H, batch_size=64, seed=0)
        written = 0
        while written < len(stream.steps):
            chunk = int(torch.randint(1, 31, (), generator=g))  # sometimes > capacity
            steps = stream.steps[written : written + chunk]
            written += len(steps)
            rb.extend(to_td(steps))
            history = Stream()
            history.steps = stream.steps[:written]
            expected = brute_force_eligible(history.steps, capacity, H)
            assert torch.equal(rb.sampler.eligible(rb.storage), expected), written
            if expected.any():
                check_windows(rb.sample(), history, capacity)
        assert written > 5 * capacity

    def test_termination_padding_repeats_the_terminal_step_with_zero_reward(self):
        rb, stream = layout_buffer(batch_size=4)
        # Only start 11 (B, terminal at 13) has mass: window 11, 12, 13, pad, pad.
        rb.update_priority(torch.arange(40), torch.zeros(40))
        rb.update_priority(torch.tensor([11]), torch.tensor([1.0]))
        batch = rb.sample()
        assert (batch["index"] == torch.tensor([11, 12, 13, 13, 13])).all()
        assert batch["validity_mask"][0].tolist() == [True, True, True, False, False]
        terminal = to_td(stream.steps[13:14])[0]
        for k in (3, 4):
            row = batch[0, k]
            assert torch.equal(row["observation"], terminal["observation"])
            assert torch.equal(row["next", "observation"], terminal["next", "observation"])
            assert row["next", "terminated"].all() and row["next", "done"].all()
            assert row["next", "reward"].item() == 0.0
        assert batch[0, 2]["next", "reward"].item() == stream.steps[13].reward

    def test_start_on_a_terminal_step_is_all_padding_after_it(self):
        rb, _ = layout_buffer(batch_size=2)
        rb.update_priority(torch.arange(40), torch.zeros(40))
        rb.update_priority(torch.tensor([15]), torch.tensor([1.0]))
        batch = rb.sample()
        assert (batch["index"] == 15).all()
        assert batch["validity_mask"][0].tolist() == [True, False, False, False, False]


class TestPriorities:
    def test_td_error_goes_to_the_sampled_start_indices(self):
        rb, _ = layout_buffer(batch_size=6)
        batch = rb.sample()
        starts = batch["index"][:, 0]
        others = torch.ones(40, dtype=torch.bool)
        others[starts] = False
        before = rb.sampler.priority(torch.arange(40))
        # The loss writes one value per window repeated over H ([B, H]).
        value = torch.arange(6, dtype=torch.float32) + 2
        batch["td_error"] = value.unsqueeze(1).expand(6, H).clone()
        rb.update_tensordict_priority(batch)
        expected = torch.zeros(40, dtype=torch.float64)
        expected.scatter_reduce_(0, starts, value.double(), "amax", include_self=False)
        got = rb.sampler.priority(torch.arange(40))
        assert torch.equal(got[starts], expected[starts])
        assert torch.equal(got[others], before[others])

    def test_td_error_of_shape_b_on_the_start_rows(self):
        rb, _ = layout_buffer(batch_size=4)
        starts_td = rb.sample()[:, 0]
        starts_td["td_error"] = torch.tensor([1.5, 2.5, 3.5, 4.5]).unsqueeze(-1)
        rb.update_tensordict_priority(starts_td)
        starts = starts_td["index"]
        expected = torch.zeros(40, dtype=torch.float64).scatter_reduce(
            0,
            starts,
            torch.tensor([1.5, 2.5, 3.5, 4.5], dtype=torch.float64),
            "amax",
            include_self=False,
        )
        assert torch.equal(rb.sampler.priority(starts), expected[starts])

    def test_duplicate_starts_keep_the_max(self):
        rb, _ = layout_buffer()
        rb.update_priority(torch.tensor([3, 3, 3]), torch.tensor([2.0, 5.0, 4.0]))
        assert rb.sampler.priority(3) == 5.0

    def test_new_transitions_get_the_running_max_priority(self):
        stream = layout_stream()
        rb = MRQReplayBuffer(40, horizon=H, batch_size=4, seed=0)
        rb.extend(to_td(stream.steps))
        assert (rb.sampler.priority(torch.arange(23)) == 1.0).all()
        rb.update_priority(torch.tensor([0, 1]), torch.tensor([7.5, 2.0]))
        rb.update_priority(torch.tensor([0]), torch.tensor([1.0]))  # max does not drop
        index = rb.extend(to_td(stream.episode(3, None)))
        assert rb.sampler.priority(index).tolist() == [7.5, 7.5, 7.5]
        assert rb.sampler.default_priority == 7.5

    def test_overwritten_slots_restart_at_the_running_max(self):
        stream = Stream()
        stream.episode(10, None)
        rb = MRQReplayBuffer(10, horizon=H, batch_size=4, seed=0)
        rb.extend(to_td(stream.steps))
        rb.update_priority(torch.arange(10), torch.linspace(1, 3, 10))
        index = rb.extend(to_td(stream.episode(2, None)))
        assert index.tolist() == [0, 1]
        assert rb.sampler.priority(index).tolist() == [3.0, 3.0]

    def test_a_start_that_becomes_eligible_recovers_its_priority(self):
        stream = Stream()
        stream.episode(6, None)
        rb = MRQReplayBuffer(20, horizon=H, batch_size=4, seed=0)
        rb.extend(to_td(stream.steps))
        rb.update_priority(torch.tensor([4]), torch.tensor([3.0]))
        assert rb.sampler.eligible(rb.storage)[4].item() is False
        assert rb.sampler.sampling_mass(rb.storage)[4] == 0
        rb.extend(to_td(stream.episode(3, None)))
        assert rb.sampler.eligible(rb.storage)[4].item() is True
        assert rb.sampler.sampling_mass(rb.storage)[4] == 3.0

    def test_bad_priorities_raise(self):
        rb, _ = layout_buffer()
        with pytest.raises(ValueError, match="finite and >= 0"):
            rb.update_priority(torch.tensor([0]), torch.tensor([-1.0]))
        with pytest.raises(ValueError, match="one priority per start"):
            rb.update_priority(torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0]))
        with pytest.raises(IndexError, match="out of range"):
            rb.update_priority(torch.tensor([40]), torch.tensor([1.0]))


class TestResume:
    def run(self, rb: MRQReplayBuffer, stream: Stream, steps: int) -> list[torch.Tensor]:
        out = []
        for i in range(steps):
            rb.extend(to_td(stream.episode(1, "terminated" if i % 7 == 6 else None)))
            batch = rb.sample()
            out.append(batch["index"].clone())
            batch["td_error"] = (1 + batch["observation"][..., 0] % 3).clone()
            rb.update_tensordict_priority(batch)
        return out

    @pytest.mark.parametrize("pending_write", [False, True])
    def test_state_dict_round_trip_gives_identical_samples(self, pending_write):
        rb, stream = layout_buffer(capacity=30, batch_size=16, seed=3)
        self.run(rb, stream, 12)  # wraps around the 30 slots
        if pending_write:  # written but not yet seen by a sample
            rb.extend(to_td(stream.episode(2, None)))
        state = rb.state_dict()
        twin = MRQReplayBuffer(30, horizon=H, batch_size=16, seed=999)
        twin.load_state_dict(state)
        assert twin.any_terminal() == rb.any_terminal()
        copy = Stream()
        copy.steps, copy._traj, copy._pos = list(stream.steps), stream._traj, stream._pos
        ours = self.run(rb, stream, 10)
        theirs = self.run(twin, copy, 10)
        for a, b in zip(ours, theirs):
            assert torch.equal(a, b)

    def test_sampler_state_alone_resumes_identically(self, tmp_path):
        # Sampler checkpoint without the buffer's: tree, flags and RNG come from it.
        def plain_buffer(seed):
            return TensorDictReplayBuffer(
                storage=LazyTensorStorage(40),
                sampler=PrioritizedSubTrajectorySampler(40, horizon=H),
                batch_size=8,
                generator=torch.Generator().manual_seed(seed),
            )

        rb, twin = plain_buffer(0), plain_buffer(1)
        td = to_td(layout_stream().steps)
        rb.extend(td)
        twin.extend(td)
        rb.update_priority(torch.tensor([1, 2]), torch.tensor([4.0, 6.0]))
        rb.sample()
        rb.sampler.dumps(tmp_path)
        twin.sampler.loads(tmp_path)
        assert torch.equal(twin.sampler.sampling_mass(), rb.sampler.sampling_mass())
        assert twin.sampler.default_priority == 6.0
        for _ in range(3):
            assert torch.equal(twin.sample()["index"], rb.sample()["index"])
        with pytest.raises(ValueError, match="horizon"):
            PrioritizedSubTrajectorySampler(40, horizon=3).load_state_dict(rb.sampler.state_dict())


class TestTorchRLComposition:
    def test_plain_tensordict_replay_buffer_with_memmap_storage(self, tmp_path):
        stream = layout_stream()
        rb = TensorDictReplayBuffer(
            storage=LazyMemmapStorage(40, scratch_dir=tmp_path),
            sampler=PrioritizedSubTrajectorySampler(40, horizon=H),
            batch_size=32,
            generator=torch.Generator().manual_seed(0),
        )
        rb.extend(to_td(stream.steps))
        batch = rb.sample()
        assert batch.batch_size == (32, H)
        check_windows(batch, stream, 40)
        batch["td_error"] = torch.full((32, H), 9.0)
        rb.update_tensordict_priority(batch)  # isinstance(PrioritizedSampler) path
        assert (rb.sampler.priority(batch["index"][:, 0]) == 9.0).all()

    def test_storage_and_sampler_sizes_must_agree(self):
        rb = TensorDictReplayBuffer(
            storage=LazyTensorStorage(50), sampler=PrioritizedSubTrajectorySampler(40), batch_size=2
        )
        rb.extend(to_td(layout_stream().steps))
        with pytest.raises(ValueError, match="max_size"):
            rb.sample()

    def test_alpha_and_beta_are_fixed(self):
        sampler = PrioritizedSubTrajectorySampler(10)
        assert (sampler.alpha, sampler.beta) == (1.0, 0.0)
        with pytest.raises(AttributeError, match="as given"):
            sampler.alpha = 0.4


def test_too_little_data_to_sample_raises():
    stream = Stream()
    rb = MRQReplayBuffer(10, horizon=H, batch_size=2, seed=0)
    rb.extend(to_td(stream.episode(H - 1, None)))
    with pytest.raises(RuntimeError, match="no eligible start"):
        rb.sample()


def test_constructor_validation():
    with pytest.raises(ValueError, match="horizon"):
        PrioritizedSubTrajectorySampler(10, horizon=0)
    with pytest.raises(ValueError, match="exceed capacity"):
        PrioritizedSubTrajectorySampler(3, horizon=5)
    with pytest.raises(ValueError, match="initial_priority"):
        PrioritizedSubTrajectorySampler(10, initial_priority=0.0)


def test_missing_truncation_and_done_flags_raise():
    td = to_td(layout_stream().steps).exclude(("next", "truncated"), ("next", "done"))
    rb = MRQReplayBuffer(40, horizon=H, batch_size=2, seed=0)
    rb.extend(td)
    with pytest.raises(KeyError, match="episode cuts"):
        rb.sample()


def test_done_without_terminated_counts_as_truncation():
    td = to_td(layout_stream().steps).exclude(("next", "truncated"))
    rb = MRQReplayBuffer(40, horizon=H, batch_size=2, seed=0, traj_key=None)
    rb.extend(td)
    assert rb.sampler.eligible(rb.storage).nonzero().squeeze(-1).tolist() == LAYOUT_ELIGIBLE


def test_scalar_transition_must_be_added_not_extended():
    td = TensorDict({("next", "terminated"): torch.zeros(1, dtype=torch.bool)}, [])
    rb = MRQReplayBuffer(10, horizon=2, batch_size=2, seed=0)
    with pytest.raises(ValueError, match="batch dim"):
        rb.extend(td)
