"""`dkd`: decoupled knowledge distillation (Zhao et al., CVPR 2022).

The KD term split in two, each scaled by T²:
- TCKD: KL between the binary distributions [p_target, 1 - p_target] of teacher and student;
- NCKD: KL between the distributions over the non-target bins only (target masked out).
loss = CE(y, s) + warm-up · (α·TCKD + β·NCKD); target = the ground-truth bin. Defaults α = 1, β = 8,
T = 4 are the paper's; the warm-up ramps the KD terms in linearly over the first epochs.
"""

import torch

from .registry import Strategy, StrategyInputs, register, soft_cross_entropy

MASK = 1000.0


def dkd_terms(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    gt = torch.nn.functional.one_hot(target, student.shape[1]).bool()
    p_s = torch.softmax(student / temperature, dim=1)
    p_t = torch.softmax(teacher / temperature, dim=1)
    b_s = torch.stack([(p_s * gt).sum(1), (p_s * ~gt).sum(1)], dim=1).clamp_min(1e-12)
    b_t = torch.stack([(p_t * gt).sum(1), (p_t * ~gt).sum(1)], dim=1).clamp_min(1e-12)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(1).mean() * temperature**2
    log_q_s = torch.log_softmax(student / temperature - MASK * gt, dim=1)
    log_q_t = torch.log_softmax(teacher / temperature - MASK * gt, dim=1)
    nckd = (log_q_t.exp() * (log_q_t - log_q_s)).sum(1).mean() * temperature**2
    return tckd, nckd


@register
class DKD(Strategy):
    name = "dkd"
    defaults = {"alpha": 1.0, "beta": 8.0, "temperature": 4.0, "warmup_epochs": 5.0}

    def forward(self, inputs: StrategyInputs):
        p = self.params
        ce = soft_cross_entropy(inputs.student_logits, inputs.targets)
        tckd, nckd = dkd_terms(inputs.student_logits, inputs.teacher_logits, inputs.target_bin, p["temperature"])
        warm = min((inputs.epoch + 1) / max(p["warmup_epochs"], 1.0), 1.0)
        return {"ce": ce, "tckd": tckd, "nckd": nckd, "loss": ce + warm * (p["alpha"] * tckd + p["beta"] * nckd)}
