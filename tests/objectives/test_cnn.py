from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch

from hpo.errors import ObjectiveError
from hpo.objectives import cnn, evaluate_test
from hpo.objectives._augment import augment
from hpo.objectives._model import build_model
from hpo.objectives._pruning import make_pruning_permanent, prune_globally, sparsity

# Small and short, so a run on digits takes well under a second on one CPU thread.
FAST = {"epochs": 2, "width": 8, "batch_size": 128}


class RecordingTrial:
    """A trial with fixed parameters that records what the objective reports and stores."""

    def __init__(self, params: dict[str, Any] | None = None, *, prune: bool = False) -> None:
        self.number = 0
        self.params = dict(params or {})
        self.user_attrs: dict[str, Any] = {}
        self.reports: list[tuple[int, float]] = []
        self.prune = prune

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


def write_bars_npz(path: Path, *, per_class: int = 40) -> Path:
    """Write 10x10 images of a horizontal, a vertical or a diagonal bar, with noise."""
    rng = np.random.default_rng(0)
    images = []
    labels = []
    for label in range(3):
        for _ in range(per_class):
            image = rng.uniform(0, 60, size=(10, 10))
            offset = int(rng.integers(2, 8))
            if label == 0:
                image[offset, 1:9] = 255
            elif label == 1:
                image[1:9, offset] = 255
            else:
                image[np.arange(10), np.arange(10)] = 255
            images.append(image)
            labels.append(label * 10)
    np.savez(path, x=np.array(images, dtype=np.uint8), y=np.array(labels))
    return path


def test_cnn_reports_every_epoch() -> None:
    trial = RecordingTrial(FAST)

    value = cnn(trial, device="cpu")

    assert isinstance(value, float)
    assert 0.0 <= value <= 1.0
    assert [step for step, _ in trial.reports] == [0, 1]


def test_cnn_sets_user_attrs() -> None:
    trial = RecordingTrial({**FAST, "prune_amount": 0.5, "finetune_epochs": 1})

    cnn(trial, device="cpu")

    attrs = trial.user_attrs
    assert attrs["device"] == "cpu"
    assert attrs["epochs_run"] == 3
    assert attrs["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert isinstance(attrs["nonzero_params"], int)
    assert attrs["model_size_bytes"] == 4 * attrs["nonzero_params"]
    assert attrs["inference_ms"] > 0


def test_cnn_with_optuna_trial() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask(
        {
            "epochs": optuna.distributions.IntDistribution(1, 2),
            "lr": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True),
        }
    )

    value = cnn(trial, width=8, device="cpu")
    study.tell(trial, value)

    frozen = study.trials[0]
    assert frozen.value == value
    assert set(frozen.intermediate_values) == set(range(frozen.params["epochs"]))
    assert frozen.user_attrs["epochs_run"] == frozen.params["epochs"]
    assert frozen.user_attrs["sparsity"] == 0.0


def test_cnn_same_seed_same_score() -> None:
    params = {**FAST, "noise": 0.05, "erasing": 0.3, "dropout": 0.2}
    first = RecordingTrial(params)
    second = RecordingTrial(params)

    first_value = cnn(first, device="cpu", seed=5)
    second_value = cnn(second, device="cpu", seed=5)

    assert first_value == second_value
    assert first.reports == second.reports
    assert first.user_attrs["nonzero_params"] == second.user_attrs["nonzero_params"]


def test_cnn_pruned_by_pruner() -> None:
    trial = RecordingTrial(FAST, prune=True)

    with pytest.raises(optuna.TrialPruned, match=r"Stopped at epoch 0 with validation accuracy"):
        cnn(trial, device="cpu")

    assert [step for step, _ in trial.reports] == [0]
    assert trial.user_attrs["epochs_run"] == 1


def test_cnn_two_objectives() -> None:
    trial = RecordingTrial(FAST)

    values = cnn(trial, device="cpu", objectives=["val_accuracy", "nonzero_params"])

    assert isinstance(values, tuple)
    assert len(values) == 2
    assert values[1] == trial.user_attrs["nonzero_params"]


def test_cnn_trial_param_overrides_arg() -> None:
    trial = RecordingTrial({**FAST, "epochs": 1})

    cnn(trial, device="cpu", epochs=3)

    assert len(trial.reports) == 1


def test_cnn_invalid_trial_param() -> None:
    trial = RecordingTrial({"optimizer": "rmsprop"})

    with pytest.raises(ObjectiveError, match=r"optimizer must be 'adam', 'adamw' or 'sgd'"):
        cnn(trial)


def test_cnn_npz_end_to_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_bars_npz(tmp_path / "bars.npz")
    args = {"dataset": "npz", "path": str(path), "device": "cpu"}
    params = {"epochs": 8, "width": 8, "batch_size": 32, "lr": 0.01, "rotation": 0.0}

    with caplog.at_level(logging.DEBUG, logger="hpo.objectives"):
        first = cnn(RecordingTrial(params), **args)
        second = cnn(RecordingTrial(params), **args)

    assert first == second
    assert first >= 0.9
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("Loaded the npz dataset on cpu") for m in messages)
    assert any(m.endswith("images of 10x10, 3 classes.") for m in messages)
    assert any(m.startswith("Reusing the loaded npz dataset") for m in messages)


def test_evaluate_test_returns_accuracy() -> None:
    accuracy = evaluate_test(FAST, {"device": "cpu"})

    assert 0.0 <= accuracy <= 1.0


def test_digits_defaults_reach_accuracy() -> None:
    trial = RecordingTrial()

    value = cnn(trial, device="cpu")

    assert value >= 0.97


def test_prune_globally_reaches_amount() -> None:
    torch.manual_seed(0)
    model = build_model(
        in_channels=1, image_size=(8, 8), num_classes=10, width=8, depth=2, dropout=0.0
    )

    prune_globally(model, 0.7)
    make_pruning_permanent(model)

    assert sparsity(model) == pytest.approx(0.7, abs=0.001)
    assert not any(name.endswith("_orig") for name, _ in model.named_parameters())
    assert not any(name.endswith("_mask") for name, _ in model.named_buffers())


def test_build_model_pools_while_size_allows() -> None:
    model = build_model(
        in_channels=1, image_size=(8, 8), num_classes=10, width=4, depth=3, dropout=0.0
    )

    pools = [layer for layer in model if isinstance(layer, torch.nn.MaxPool2d)]
    assert len(pools) == 2
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_augment_zero_strengths_is_identity() -> None:
    x = torch.rand(4, 1, 8, 8)
    generator = torch.Generator().manual_seed(0)

    result = augment(
        x, rotation=0, translation=0, scale=0, noise=0, erasing=0, generator=generator
    )

    assert torch.equal(result, x)


def test_augment_is_seeded() -> None:
    x = torch.rand(16, 1, 8, 8)
    strengths = {"rotation": 15.0, "translation": 0.1, "scale": 0.1, "noise": 0.1, "erasing": 0.5}

    first = augment(x, **strengths, generator=torch.Generator().manual_seed(1))
    second = augment(x, **strengths, generator=torch.Generator().manual_seed(1))

    assert first.shape == x.shape
    assert torch.equal(first, second)
    assert not torch.equal(first, x)


def test_augment_erasing_zeroes_rectangle() -> None:
    x = torch.ones(8, 1, 10, 10)

    result = augment(
        x,
        rotation=0,
        translation=0,
        scale=0,
        noise=0,
        erasing=1.0,
        generator=torch.Generator().manual_seed(0),
    )

    erased = (result == 0).sum(dim=(1, 2, 3))
    assert bool((erased >= 1).all())
    assert bool((erased <= 0.33 * 100 + 10).all())
