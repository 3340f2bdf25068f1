"""`soft`: Hinton knowledge distillation.

loss = (1 - α)·CE(y, s) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)). T = 4 spreads the teacher's mass over
neighbouring bins and the cadence/harmonic alternatives (the "dark knowledge" of an ordinal task);
α = 0.7 leans on the teacher, as Hinton et al. recommend when the teacher is much stronger.
"""

from .registry import Strategy, StrategyInputs, kl_divergence, register, soft_cross_entropy


@register
class Soft(Strategy):
    name = "soft"
    defaults = {"alpha": 0.7, "temperature": 4.0}

    def forward(self, inputs: StrategyInputs):
        a, t = self.params["alpha"], self.params["temperature"]
        ce = soft_cross_entropy(inputs.student_logits, inputs.targets)
        kd = kl_divergence(inputs.teacher_logits, inputs.student_logits, t)
        return {"ce": ce, "kd": kd, "loss": (1 - a) * ce + a * kd}
