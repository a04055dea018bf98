"""The weight average every trainer keeps: it follows its model, and averages what it should."""

import torch
from torch import nn

from lab.training import WeightAverage


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2)).eval()


def _step(model: nn.Module) -> None:
    """A change of every weight and of the batch-norm statistics, as a training step makes."""
    model.train()
    model(torch.randn(8, 3, 6, 6, dtype=next(model.parameters()).dtype))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.eval()


def test_the_average_follows_its_model_to_another_device_or_dtype():
    # The classifier's average was once made before accelerate moved the model to the GPU, and the
    # first update failed there. On a CPU a move to float64 stands in for that move.
    model = _model()
    model(torch.zeros(1, 3, 6, 6))  # materialise the lazy layer
    average = WeightAverage(model)
    model.to(torch.float64)
    _step(model)
    average.update(0.5)
    for (name, a), b in zip(average.state_dict().items(), model.state_dict().values()):
        assert (a.device, a.dtype) == (b.device, b.dtype), name


def test_parameters_are_averaged_and_buffers_copied_or_averaged():
    model = _model()
    model(torch.zeros(1, 3, 6, 6))
    copied, averaged = WeightAverage(model), WeightAverage(model, average_buffers=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _step(model)
    copied.update(0.9)
    averaged.update(0.9)
    after = model.state_dict()
    for name, value in after.items():
        mixed = before[name] + 0.1 * (value - before[name]) if value.is_floating_point() else value
        is_parameter = name in dict(model.named_parameters())
        torch.testing.assert_close(copied.state_dict()[name], mixed if is_parameter else value)
        torch.testing.assert_close(averaged.state_dict()[name], mixed)
    assert not torch.equal(before["1.running_mean"], after["1.running_mean"])  # the step did change them


def test_a_saved_average_loads_back_and_goes_on_from_there():
    model = _model()
    model(torch.zeros(1, 3, 6, 6))
    first = WeightAverage(model)
    _step(model)
    first.update(0.5)
    second = WeightAverage(model)
    second.load_state_dict({k: v.clone() for k, v in first.state_dict().items()})
    _step(model)
    first.update(0.5)
    second.update(0.5)
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
    assert not second.averaged.training and not any(p.requires_grad for p in second.averaged.parameters())
