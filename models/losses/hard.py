"""`hard`: cross-entropy to the teacher's argmax bin, mixed with the ground truth.

loss = (1 - α)·CE(y, s) + α·CE(onehot(argmax t), s). α = 0.5 weighs teacher and truth equally: the
teacher's hard label is only a correction where it is more reliable than the noisy reference.
"""

import torch

from .registry import Strategy, StrategyInputs, register, soft_cross_entropy


@register
class Hard(Strategy):
    name = "hard"
    defaults = {"alpha": 0.5}

    def forward(self, inputs: StrategyInputs):
        a = self.params["alpha"]
        ce = soft_cross_entropy(inputs.student_logits, inputs.targets)
        teacher_bin = inputs.teacher_logits.argmax(dim=1)
        teacher_ce = torch.nn.functional.cross_entropy(inputs.student_logits, teacher_bin)
        return {"ce": ce, "teacher_ce": teacher_ce, "loss": (1 - a) * ce + a * teacher_ce}
