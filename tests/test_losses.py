"""Each distillation loss on hand-made logits against values worked out by hand."""

import math

import pytest

torch = pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from ppg_stream.models.losses import StrategyInputs, build_strategy  # noqa: E402
from ppg_stream.models.losses.dkd import dkd_terms  # noqa: E402
from ppg_stream.models.losses.registry import kl_divergence, soft_cross_entropy  # noqa: E402

LN = math.log


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_soft_cross_entropy_and_temperature_scaled_kl():
    student = t([0.0, LN(3)])  # softmax = [1/4, 3/4]
    assert soft_cross_entropy(student, t([1.0, 0.0])).item() == pytest.approx(LN(4))
    assert soft_cross_entropy(student, t([0.5, 0.5])).item() == pytest.approx(0.5 * LN(4) + 0.5 * LN(4 / 3))
    uniform = t([0.0, 0.0])
    # T = 1: KL([1/4, 3/4] || [1/2, 1/2])
    expected_t1 = 0.25 * LN(0.5) + 0.75 * LN(1.5)
    assert kl_divergence(student, uniform, 1.0).item() == pytest.approx(expected_t1)
    # T = 2: softmax([0, ln3 / 2]) = [1, √3] / (1 + √3); times T² = 4
    p = [1 / (1 + math.sqrt(3)), math.sqrt(3) / (1 + math.sqrt(3))]
    expected_t2 = 4 * sum(pi * LN(pi / 0.5) for pi in p)
    assert kl_divergence(student, uniform, 2.0).item() == pytest.approx(expected_t2)


def _inputs(student, targets, target_bin, teacher=None, **kw):
    return StrategyInputs(student, targets, torch.tensor(target_bin), teacher, **kw)


def test_scratch_is_plain_cross_entropy():
    terms = build_strategy("scratch")(_inputs(t([0.0, LN(3)]), t([1.0, 0.0]), [0]))
    assert terms["loss"].item() == pytest.approx(LN(4))


def test_hard_mixes_truth_and_teacher_argmax():
    student = t([0.0, LN(3)])  # [1/4, 3/4]
    teacher = t([-1.0, 5.0])  # argmax = bin 1
    terms = build_strategy("hard", alpha=0.25)(_inputs(student, t([1.0, 0.0]), [0], teacher))
    assert terms["teacher_ce"].item() == pytest.approx(-LN(0.75))
    assert terms["loss"].item() == pytest.approx(0.75 * LN(4) + 0.25 * -LN(0.75))


def test_soft_is_hinton_kd():
    student, teacher = t([0.0, LN(3)]), t([0.0, 0.0])
    terms = build_strategy("soft", alpha=0.5, temperature=2.0)(_inputs(student, t([1.0, 0.0]), [0], teacher))
    p = [0.5, 0.5]
    q = [1 / (1 + math.sqrt(3)), math.sqrt(3) / (1 + math.sqrt(3))]
    kd = 4 * sum(pi * LN(pi / qi) for pi, qi in zip(p, q))  # teacher ‖ student
    assert terms["kd"].item() == pytest.approx(kd)
    assert terms["loss"].item() == pytest.approx(0.5 * LN(4) + 0.5 * kd)


def test_dkd_target_and_non_target_terms_at_t1():
    student = t([0.0, LN(2), 0.0])  # [1/4, 1/2, 1/4]
    teacher = t([LN(2), 0.0, 0.0])  # [1/2, 1/4, 1/4]
    tckd, nckd = dkd_terms(student, teacher, torch.tensor([0]), 1.0)
    # binary [p_target, rest]: teacher [1/2, 1/2], student [1/4, 3/4]
    assert tckd.item() == pytest.approx(0.5 * LN(0.5 / 0.25) + 0.5 * LN(0.5 / 0.75))
    # non-target bins only (target masked): teacher [1/2, 1/2], student [2/3, 1/3]
    assert nckd.item() == pytest.approx(0.5 * LN(0.5 / (2 / 3)) + 0.5 * LN(0.5 / (1 / 3)))


def test_dkd_masking_ignores_target_logit_and_scales_with_t_squared():
    student = t([0.0, LN(2), 0.0])
    teacher = t([LN(2), 0.0, 0.0])
    _, nckd = dkd_terms(student, teacher, torch.tensor([0]), 2.0)
    s = [math.sqrt(2), 1.0]  # exp(logit / 2) over non-target bins 1, 2
    q_s = [v / sum(s) for v in s]
    assert nckd.item() == pytest.approx(4 * sum(0.5 * LN(0.5 / q) for q in q_s))
    # changing only the target logit leaves NCKD untouched
    _, nckd_changed = dkd_terms(t([9.0, LN(2), 0.0]), teacher, torch.tensor([0]), 2.0)
    assert nckd_changed.item() == pytest.approx(nckd.item())


def test_dkd_total_with_warmup():
    student, teacher = t([0.0, LN(2), 0.0]), t([LN(2), 0.0, 0.0])
    strategy = build_strategy("dkd", alpha=1.0, beta=2.0, temperature=1.0, warmup_epochs=4.0)
    tckd, nckd = dkd_terms(student, teacher, torch.tensor([0]), 1.0)
    terms = strategy(_inputs(student, t([1.0, 0.0, 0.0]), [0], teacher, epoch=1))
    assert terms["loss"].item() == pytest.approx(LN(4) + 0.5 * (tckd.item() + 2 * nckd.item()))


def test_feature_hint_is_zero_for_an_exact_match_and_positive_otherwise():
    strategy = build_strategy("feature", hint_weight=2.0)
    teacher_features = torch.randn(2, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    strategy.build_projection(teacher_features, teacher_features)
    strategy.projection = strategy.projection.double()
    with torch.no_grad():
        strategy.projection.weight.copy_(torch.eye(3).unsqueeze(-1))
        strategy.projection.bias.zero_()
    inputs = _inputs(t([0.0, LN(3)], [0.0, LN(3)]), t([1.0, 0.0], [1.0, 0.0]), [0, 0],
                     student_features=teacher_features, teacher_features=3 * teacher_features + 1)
    terms = strategy(inputs)
    assert terms["hint"].item() == pytest.approx(0.0, abs=1e-9)  # float64 rounding only; standardised: scale and offset do not matter
    assert terms["loss"].item() == pytest.approx(LN(4))
    inputs.student_features = torch.randn(2, 3, 5, dtype=torch.float64)
    assert strategy(inputs)["hint"].item() > 0.1


def test_unknown_strategy_or_parameter_is_refused():
    with pytest.raises(ValueError, match="unknown strategy 'magic'"):
        build_strategy("magic")
    with pytest.raises(ValueError, match="has no parameter"):
        build_strategy("soft", gamma=1.0)
