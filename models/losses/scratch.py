"""`scratch`: no teacher, cross-entropy to the Gaussian ground truth; the baseline every strategy must beat."""

from .registry import Strategy, StrategyInputs, register, soft_cross_entropy


@register
class Scratch(Strategy):
    name = "scratch"
    needs_teacher = False

    def forward(self, inputs: StrategyInputs):
        ce = soft_cross_entropy(inputs.student_logits, inputs.targets)
        return {"ce": ce, "loss": ce}
