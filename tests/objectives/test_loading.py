from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hpo.errors import DatasetError, ObjectiveError
from hpo.objectives import check_objective, cnn, load_objective


def _write_module(folder: Path, name: str, source: str) -> None:
    path = folder / f"{name.replace('.', '/')}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.parents:
        if parent == folder:
            break
        (parent / "__init__.py").touch()
    path.write_text(textwrap.dedent(source))


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_load_builtin_cnn() -> None:
    assert load_objective("cnn") is cnn


def test_load_import_path(user_modules: Path) -> None:
    _write_module(user_modules, "user_objective_a", "def objective(trial):\n    return 0.5\n")

    objective = load_objective("user_objective_a:objective")

    assert objective(None) == 0.5


def test_load_import_path_in_package(user_modules: Path) -> None:
    _write_module(
        user_modules,
        "user_package_b.objectives",
        """
        class Objectives:
            @staticmethod
            def square(trial):
                return 4.0
        """,
    )

    objective = load_objective("user_package_b.objectives:Objectives.square")

    assert objective(None) == 4.0


def test_load_unknown_builtin_suggests_name() -> None:
    with pytest.raises(
        ObjectiveError, match=r"unknown objective 'cnnn' \(did you mean cnn\?\): use"
    ):
        load_objective("cnnn")


def test_load_unknown_builtin_lists_builtins() -> None:
    with pytest.raises(ObjectiveError, match=r"built-in objective \(cnn\)"):
        load_objective("resnet")


@pytest.mark.parametrize("name", [":objective", "module:", "a:b:c"])
def test_load_malformed_import_path(name: str) -> None:
    with pytest.raises(ObjectiveError, match="invalid objective import path"):
        load_objective(name)


def test_load_missing_module_names_it(user_modules: Path) -> None:
    with pytest.raises(
        ObjectiveError,
        match=r"objective module no_such_module_c not found \(the current directory",
    ):
        load_objective("no_such_module_c:objective")


def test_load_missing_submodule_names_package(user_modules: Path) -> None:
    with pytest.raises(ObjectiveError, match=r"objective module no_such_package_d not found"):
        load_objective("no_such_package_d.sub:objective")


def test_load_module_with_missing_dependency(user_modules: Path) -> None:
    _write_module(user_modules, "user_objective_e", "import no_such_dependency_e\n")

    with pytest.raises(
        ObjectiveError,
        match=r"importing objective module user_objective_e failed: "
        r"No module named 'no_such_dependency_e': install",
    ):
        load_objective("user_objective_e:objective")


def test_load_module_that_raises(user_modules: Path) -> None:
    _write_module(user_modules, "user_objective_f", "raise RuntimeError('no GPU here')\n")

    with pytest.raises(
        ObjectiveError,
        match=r"importing objective module user_objective_f failed: RuntimeError: no GPU here",
    ):
        load_objective("user_objective_f:objective")


def test_load_missing_attribute(user_modules: Path) -> None:
    _write_module(user_modules, "user_objective_g", "def objective(trial):\n    return 1.0\n")

    with pytest.raises(ObjectiveError, match=r"has no attribute objectve: check the function"):
        load_objective("user_objective_g:objectve")


def test_load_not_callable(user_modules: Path) -> None:
    _write_module(user_modules, "user_objective_h", "objective = 3\n")

    with pytest.raises(ObjectiveError, match=r"is a int, not a function"):
        load_objective("user_objective_h:objective")


def test_objective_errors_exit_with_2() -> None:
    with pytest.raises(ObjectiveError) as info:
        load_objective("cnnn")

    assert info.value.exit_code == 2


def test_import_does_not_load_torch() -> None:
    code = "import sys, hpo.objectives; print(sorted({'torch', 'sklearn'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


def test_check_user_objective_accepts_args(user_modules: Path) -> None:
    _write_module(
        user_modules, "user_objective_i", "def objective(trial, *, scale=1.0):\n    return scale\n"
    )

    check_objective("user_objective_i:objective", {"scale": 2.0})


def test_check_user_objective_rejects_args(user_modules: Path) -> None:
    _write_module(user_modules, "user_objective_j", "def objective(trial):\n    return 1.0\n")

    with pytest.raises(
        ObjectiveError,
        match=r"'user_objective_j:objective' cannot take the objective arguments scale",
    ):
        check_objective("user_objective_j:objective", {"scale": 2.0})


def test_check_user_objective_without_trial(user_modules: Path) -> None:
    _write_module(user_modules, "user_objective_k", "def objective():\n    return 1.0\n")

    with pytest.raises(ObjectiveError, match=r"cannot be called with a trial alone"):
        check_objective("user_objective_k:objective", {})


def test_check_user_objective_import_error() -> None:
    with pytest.raises(ObjectiveError, match="objective module no_such_module_l not found"):
        check_objective("no_such_module_l:objective", {})


def test_check_cnn_defaults() -> None:
    check_objective("cnn", {})


def test_check_cnn_full_arguments() -> None:
    check_objective(
        "cnn",
        {
            "epochs": 3,
            "optimizer": "sgd",
            "objectives": ["val_accuracy", "nonzero_params"],
            "device": "cpu",
        },
        param_names=["lr", "width", "prune_amount"],
    )


def test_check_cnn_unknown_argument_suggests_name() -> None:
    with pytest.raises(
        ObjectiveError,
        match=r"objective cnn: unknown argument 'wieght_decay' \(did you mean weight_decay\?\)",
    ):
        check_objective("cnn", {"wieght_decay": 0.1})


def test_check_cnn_unknown_search_space_parameter() -> None:
    with pytest.raises(
        ObjectiveError,
        match=r"unknown search space parameter 'dropuot' \(did you mean dropout\?\)",
    ):
        check_objective("cnn", {}, param_names=["dropuot"])


def test_check_cnn_rejects_tuning_data_argument() -> None:
    with pytest.raises(ObjectiveError, match=r"unknown search space parameter 'seed'"):
        check_objective("cnn", {}, param_names=["seed"])


def test_check_cnn_rejects_fixed_and_tuned() -> None:
    with pytest.raises(
        ObjectiveError, match=r"lr both fixed in the objective arguments and tuned"
    ):
        check_objective("cnn", {"lr": 0.1}, param_names=["lr"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"lr": 0}, r"lr must be greater than 0, but got lr=0"),
        ({"optimizer": "rmsprop"}, r"optimizer must be 'adam', 'adamw' or 'sgd'"),
        ({"depth": 4}, r"depth must be less than or equal to 3, but got depth=4"),
        ({"epochs": 2.5}, r"epochs must be a valid integer, but got epochs=2.5"),
        ({"epochs": True}, r"epochs must not be a boolean, but got epochs=True"),
        ({"prune_amount": 1.0}, r"prune_amount must be less than 1"),
        ({"device": "tpu"}, r"device must be auto, cpu, cuda or cuda:<index>"),
        ({"objectives": ["loss"]}, r"objectives\[0\] must be 'val_accuracy' or 'nonzero_params'"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, r"val_fraction \+ test_fraction must be"),
        ({"dataset": "mnist"}, r"dataset mnist needs data_dir"),
        ({"dataset": "npz"}, r"dataset npz needs path"),
        ({"data_dir": "/tmp"}, r"data_dir is used only with dataset mnist or fashion_mnist"),
    ],
)
def test_check_cnn_invalid_value(args: dict[str, object], message: str) -> None:
    with pytest.raises(ObjectiveError, match=message):
        check_objective("cnn", args)


def test_check_cnn_missing_data_dir(tmp_path: Path) -> None:
    missing = tmp_path / "missing"

    with pytest.raises(DatasetError, match=rf"dataset folder {missing} does not exist"):
        check_objective("cnn", {"dataset": "mnist", "data_dir": str(missing)})
