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
    loss, stats = grpo_loss(logp, old, adv, mask, ref_logp=ref, epsilon=0.2, beta=0.1)
    expected = _direct_loss(
        logp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), ref.tolist(), 0.2, 0.1
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert 0 < stats["clip_fraction"].item() < 1
    # Without the KL term the loss is the surrogate alone.
    loss0, _ = grpo_loss(logp, old, adv, mask, ref_logp=None, epsilon=0.2)
    expected0 = _direct_loss(
        logp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), logp.tolist(), 0.2, 0.0
    )
    assert loss0.item() == pytest.approx(expected0, rel=1e-6)


def test_on_policy_gradient_is_the_policy_gradient():
    # With old = logp (num_iterations=1) and no KL, d loss / d logp = -A / n_tokens, and the
    # ratio is exactly 1 so the clip never binds; with num_iterations > 1 it can (below).
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.1]], requires_grad=True)
    adv = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, stats = grpo_loss(logp, logp.detach(), adv, mask, ref_logp=None)
    loss.backward()
    expected = torch.tensor([[-2.0, -2.0], [1.0, 0.0]]) / 3
    assert torch.allclose(logp.grad, expected)
    assert stats["clip_fraction"].item() == 0.0


def test_old_argument_names_warn():
    logp = torch.tensor([[-1.0]])
    with pytest.warns(FutureWarning, match="epsilon and beta"):
        a, _ = grpo_loss(logp, logp - 1, torch.tensor([1.0]), torch.ones(1, 1), clip_epsilon=0.1)
    b, _ = grpo_loss(logp, logp - 1, torch.tensor([1.0]), torch.ones(1, 1), epsilon=0.1)
    assert a.item() == b.item() == pytest.approx(-1.1)


@pytest.mark.parametrize("log_ratio", [99.0, -99.0, 1e4, -1e4])
def test_extreme_log_ratios_keep_gradients_finite(log_ratio):
    # Policy vs old and policy vs reference log-ratios far outside exp's float range.
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], requires_grad=True)
    far = (logp - log_ratio).detach()
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 2)
    loss, stats = grpo_loss(logp, far, adv, mask, ref_logp=far, epsilon=0.2, beta=0.04)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()
    assert torch.isfinite(stats["kl"]) and stats["kl"].item() <= 10.0
    # The same through k3_kl alone, both signs of the log-ratio.
    x = torch.tensor([0.0], requires_grad=True)
    k3_kl(x, x.detach() + log_ratio).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_k3_kl_bounds_are_verls():
    # r = ref - logp is clamped to [-20, 20] before exp; the estimate to [-10, 10].
    from sc_cello1.train._grpo import KL_BOUND, LOG_RATIO_BOUND

    assert (LOG_RATIO_BOUND, KL_BOUND) == (20.0, 10.0)
    big = k3_kl(torch.tensor([0.0]), torch.tensor([25.0]), clamp=1e12).item()
    assert big == pytest.approx(math.exp(20.0) - 20.0 - 1.0, rel=1e-5)


def test_fully_masked_rows_and_non_finite_padding():
    # Row 1 is fully masked and holds -inf / nan log-probs (e.g. padding after an early end).
    logp = torch.tensor([[-1.0, -2.0], [float("-inf"), float("nan")]], requires_grad=True)
    old = torch.tensor([[-1.1, -1.9], [float("-inf"), 3.0]])
    ref = torch.tensor([[-0.9, -2.5], [float("nan"), float("-inf")]])
    adv = torch.tensor([0.7, -2.0])
    mask = torch.tensor([[1, 1], [0, 0]])
    loss, _ = grpo_loss(logp, old, adv, mask, ref_logp=ref, epsilon=0.2, beta=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()
    assert logp.grad[1].abs().sum().item() == 0.0
    # The masked row does not count: the loss is row 0's alone.
    loss0, _ = grpo_loss(logp[:1], old[:1], adv[:1], mask[:1], ref_logp=ref[:1], beta=0.1)
    assert loss.item() == pytest.approx(loss0.item(), rel=1e-6)
    # Everything masked: loss 0, zero gradient.
    z = torch.tensor([[-1.0, float("nan")]], requires_grad=True)
    loss_z, _ = grpo_loss(
        z, z.detach(), torch.tensor([1.0]), torch.zeros(1, 2), ref_logp=z.detach()
    )
    loss_z.backward()
    assert loss_z.item() == 0.0 and torch.equal(z.grad, torch.zeros(1, 2))


def test_two_iterations_clip_and_match_a_hand_computed_loss():
    """Two updates on one rollout, by hand: after the first step the ratio leaves [0.8, 1.2]."""
    # A 3-token "policy": logits theta, one completion token per row.
    theta = torch.zeros(3, requires_grad=True)
    tokens = torch.tensor([[0], [1]])  # row 0 sampled token 0, row 1 token 1
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 1)
    opt = torch.optim.SGD([theta], lr=2.0)

    def logp_of(t):
        return torch.log_softmax(t, 0)[tokens]

    old = logp_of(theta).detach()  # computed once, before the updates
    clip_fractions, losses = [], []
    for _ in range(2):  # num_iterations = 2
        loss, stats = grpo_loss(logp_of(theta), old, adv, mask, ref_logp=None, epsilon=0.2)
        losses.append(loss.item())
        clip_fractions.append(stats["clip_fraction"].item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    # Iteration 1: ratio 1, loss = mean(-A) = 0, gradient -(A_i/2) d logp_i / d theta.
    assert losses[0] == pytest.approx(0.0, abs=1e-7) and clip_fractions[0] == 0.0
    # By hand: p = softmax(0) = 1/3 each; d log p_k / d theta_j = 1[k=j] - 1/3.
    # grad = -(1/2)[(1,0,0) - 1/3] + (1/2)[(0,1,0) - 1/3] = (-1/2, 1/2, 0); theta <- -2 grad.
    theta1 = [1.0, -1.0, 0.0]
    z = sum(math.exp(t) for t in theta1)
    p0, p1 = math.exp(theta1[0]) / z, math.exp(theta1[1]) / z
    r0, r1 = p0 / (1 / 3), p1 / (1 / 3)  # 1.73 and 0.23: both outside [0.8, 1.2]
    # Row 0 (A=+1): max(-r0, -1.2) = -1.2 (clipped); row 1 (A=-1): max(r1, 0.8) = 0.8 (clipped).
    expected = (max(-r0, -1.2) + max(r1, 0.8)) / 2
    assert losses[1] == pytest.approx(expected, rel=1e-6)
    assert clip_fractions[1] == 1.0
