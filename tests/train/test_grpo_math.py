from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from sc_cello1.train import group_advantages, grpo_loss, k3_kl  # noqa: E402


def test_group_advantages_match_the_formula():
    rewards = torch.tensor([1.0, 0.0, -1.0, 0.5, 0.5, 0.5, 0.25, 1.0])
    adv = group_advantages(rewards, 4)
    for g in range(2):
        r = rewards[4 * g : 4 * g + 4].tolist()
        mean = sum(r) / 4
        std = math.sqrt(sum((x - mean) ** 2 for x in r) / 3)  # unbiased, as verl
        expected = [(x - mean) / (std + 1e-6) for x in r]
        assert adv[4 * g : 4 * g + 4].tolist() == pytest.approx(expected, abs=1e-6)


def test_equal_rewards_give_zero_advantage():
    adv = group_advantages(torch.tensor([-1.0, -1.0, 0.5, 0.5]), 2)
    assert adv.abs().max().item() == 0.0


def test_k3_kl_matches_the_formula_and_is_non_negative():
    logp = torch.tensor([-1.0, -2.0, -0.5, -3.0])
    ref = torch.tensor([-1.5, -2.0, -0.1, -1.0])
    kl = k3_kl(logp, ref)
    expected = [
        math.exp(r - p) - (r - p) - 1 for p, r in zip(logp.tolist(), ref.tolist(), strict=True)
    ]
    assert kl.tolist() == pytest.approx(expected, rel=1e-6)
    assert (kl >= 0).all() and kl[1].item() == 0.0
    # Clamped for huge log-ratios, as verl's low_var_kl.
    assert k3_kl(torch.tensor([-30.0]), torch.tensor([0.0])).item() == 10.0


def _direct_loss(logp, old, adv, mask, ref, eps, coef):
    total, n = 0.0, 0
    for i in range(len(logp)):
        for t in range(len(logp[i])):
            if not mask[i][t]:
                continue
            ratio = math.exp(logp[i][t] - old[i][t])
            clipped = min(max(ratio, 1 - eps), 1 + eps)
            pg = max(-adv[i] * ratio, -adv[i] * clipped)
            d = ref[i][t] - logp[i][t]
            total += pg + coef * (math.exp(d) - d - 1)
            n += 1
    return total / n


def test_clipped_loss_matches_a_direct_formula():
    logp = torch.tensor([[-1.0, -0.2, -2.0], [-0.7, -1.1, -0.3]], requires_grad=True)
    old = torch.tensor([[-1.5, -0.1, -2.0], [-0.2, -1.0, -0.3]])  # ratios > 1.2, < 0.8 and 1
    ref = torch.tensor([[-1.2, -0.4, -1.0], [-0.5, -1.1, -0.9]])
    adv = torch.tensor([1.3, -0.8])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    loss, stats = grpo_loss(logp, old, adv, mask, ref_logp=ref, clip_epsilon=0.2, kl_coef=0.1)
    expected = _direct_loss(
        logp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), ref.tolist(), 0.2, 0.1
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert 0 < stats["clip_fraction"].item() < 1
    # Without the KL term the loss is the surrogate alone.
    loss0, _ = grpo_loss(logp, old, adv, mask, ref_logp=None, clip_epsilon=0.2)
    expected0 = _direct_loss(
        logp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), logp.tolist(), 0.2, 0.0
    )
    assert loss0.item() == pytest.approx(expected0, rel=1e-6)


def test_on_policy_gradient_is_the_policy_gradient():
    # With old = logp (one update per rollout) and no KL, d loss / d logp = -A / n_tokens.
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.1]], requires_grad=True)
    adv = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, stats = grpo_loss(logp, logp.detach(), adv, mask, ref_logp=None)
    loss.backward()
    expected = torch.tensor([[-2.0, -2.0], [1.0, 0.0]]) / 3
    assert torch.allclose(logp.grad, expected)
    assert stats["clip_fraction"].item() == 0.0
