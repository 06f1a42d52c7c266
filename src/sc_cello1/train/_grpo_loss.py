"""The torch part of GRPO: group advantages, the clipped surrogate with a k3 KL, log-probs.

The objective follows the authors' verl recipe: ``num_generations`` sampled
completions per puzzle, rewards from :func:`sc_cello1.metrics.reward`, advantages
normalised within each puzzle's group, the PPO clipped surrogate, and a KL penalty to
the frozen reference policy with the low-variance "k3" estimator, averaged over the
completion tokens of the batch. Plain functions of tensors (torch is imported inside
them), so they test without Lightning and without a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def group_advantages(
    rewards: torch.Tensor, num_generations: int, eps: float = 1e-6
) -> torch.Tensor:
    """GRPO advantages: each reward minus its group's mean, over the group's std + ``eps``.

    Rows are grouped by puzzle: rows ``[k * G, (k + 1) * G)`` are the ``G =
    num_generations`` samples of puzzle ``k``. The standard deviation is the unbiased
    one, as in verl's GRPO outcome advantage.
    """
    grouped = rewards.view(-1, num_generations)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True)
    return ((grouped - mean) / (std + eps)).view(-1)


#: Bounds of the log-ratios before ``exp``, as in verl (``core_algos.py``): the PPO
#: ratio ``log_prob - old_log_prob`` and the k3 log-ratio ``ref - log_prob`` are clamped
#: to ``[-20, 20]``, the k3 value to ``[-10, 10]``.
LOG_RATIO_BOUND = 20.0
KL_BOUND = 10.0


def k3_kl(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    clamp: float = KL_BOUND,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token low-variance KL estimate ``exp(r) - r - 1`` with ``r = ref_logp - logp``.

    An unbiased, non-negative estimator of ``KL(policy || reference)`` from samples of
    the policy (Schulman's "k3"; verl's ``low_var_kl``). As in verl, ``r`` is clamped to
    ``[-20, 20]`` before ``exp`` (so the value and its gradient stay finite for any
    log-probabilities) and the estimate to ``[-clamp, clamp]`` (default 10). Where
    ``mask`` is 0 the estimate is 0 and no gradient flows, even from infinite or NaN
    log-probabilities there.
    """
    import torch

    log_ratio = ref_logp - logp
    if mask is not None:
        log_ratio = torch.where(mask.bool(), log_ratio, torch.zeros_like(log_ratio))
    log_ratio = torch.clamp(log_ratio, min=-LOG_RATIO_BOUND, max=LOG_RATIO_BOUND)
    kl = torch.exp(log_ratio) - log_ratio - 1
    return torch.clamp(kl, min=-clamp, max=clamp)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ref_logp: torch.Tensor | None = None,
    epsilon: float = 0.2,
    beta: float = 0.001,
    clip_epsilon: float | None = None,
    kl_coef: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Compute the GRPO loss: clipped surrogate plus ``beta`` times the k3 KL, token-averaged.

    Per completion token ``t`` of row ``i`` with ratio ``rho = exp(logp - old_logp)``
    the surrogate is ``max(-A_i rho, -A_i clip(rho, 1 - epsilon, 1 + epsilon))``; the
    loss is its mean over the unmasked tokens of the batch plus ``beta`` times the mean
    :func:`k3_kl`. The log-ratio ``logp - old_logp`` is clamped to ``[-20, 20]``
    before ``exp`` (verl's bound), and masked tokens are removed with ``torch.where``
    before any arithmetic, so the loss and its gradient stay finite for extreme or
    non-finite log-probabilities at masked positions and for fully masked rows.

    Parameters
    ----------
    logp, old_logp
        Log-probabilities of the completion tokens under the current policy (with
        gradient) and the policy that sampled them, shape ``(batch, tokens)``.
    advantages
        One advantage per completion, shape ``(batch,)``.
    mask
        1 for completion tokens, 0 for padding, shape ``(batch, tokens)``.
    ref_logp
        Log-probabilities under the reference policy; ``None`` skips the KL term.
    epsilon
        Clip range of the ratio ``exp(logp - old_logp)`` (trl's name).
    beta
        Weight of the KL term (trl's name).
    clip_epsilon, kl_coef
        Deprecated names of ``epsilon`` and ``beta`` (FutureWarning).

    Returns
    -------
    ``(loss, stats)``; ``stats`` holds detached ``policy_loss``, ``kl`` and
    ``clip_fraction`` (share of tokens where the clipped term was taken).
    """
    import warnings

    import torch

    if clip_epsilon is not None or kl_coef is not None:
        warnings.warn(
            "grpo_loss: clip_epsilon and kl_coef are deprecated; use epsilon and beta.",
            FutureWarning,
            stacklevel=2,
        )
        epsilon = epsilon if clip_epsilon is None else clip_epsilon
        beta = beta if kl_coef is None else kl_coef
    keep = mask.bool()
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    n_tokens = keep.sum().to(logp.dtype).clamp(min=1.0)
    adv = advantages.to(logp.dtype).unsqueeze(1)
    log_ratio = torch.where(keep, logp - old_logp, zero)
    ratio = torch.exp(torch.clamp(log_ratio, min=-LOG_RATIO_BOUND, max=LOG_RATIO_BOUND))
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - epsilon, 1.0 + epsilon)
    per_token = torch.maximum(unclipped, clipped)
    policy_loss = torch.where(keep, per_token, zero).sum() / n_tokens
    clip_fraction = (keep & (clipped > unclipped)).sum().to(logp.dtype) / n_tokens
    loss = policy_loss
    kl = zero
    if ref_logp is not None:
        kl = torch.where(keep, k3_kl(logp, ref_logp, mask=keep), zero).sum() / n_tokens
        loss = loss + beta * kl
    stats = {
        "policy_loss": policy_loss.detach(),
        "kl": kl.detach(),
        "clip_fraction": clip_fraction.detach(),
    }
    return loss, stats


def token_log_probs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    n_completion: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Log-probabilities of the last ``n_completion`` tokens of each (left-padded) row."""
    import torch

    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=n_completion + 1,
        use_cache=False,
    )
    logits = out.logits[:, :-1, :]
    targets = input_ids[:, -n_completion:]
    # log_softmax of the chosen token, one row at a time in float32: peak memory is one
    # row of (tokens x vocabulary) floats, not the whole batch (as trl's selective_log_softmax).
    rows = []
    for row_logits, row_targets in zip(logits, targets, strict=True):
        row = row_logits.float()
        if temperature != 1.0:
            row = row / temperature
        chosen = torch.gather(row, 1, row_targets.unsqueeze(-1)).squeeze(-1)
        rows.append(chosen - torch.logsumexp(row, dim=-1))
    return torch.stack(rows)
