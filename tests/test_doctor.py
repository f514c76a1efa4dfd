"""``parsl-quantum doctor``: versions, GPUs, backends and pools, the planner profile, and what
each optional feature is missing - locally, without network calls."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

from parsl_quantum.planner.cost import CostModel, PoolCoefficients, default_profile_path
from parsl_quantum.workflow import cli
from parsl_quantum.workflow.doctor import modules_feature

FEATURES = {"gpu", "globus", "ibm", "miniapps", "docs"}


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private config directory (where the planner profile lives) and no credentials."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("GLOBUS_COMPUTE_USER_DIR", str(tmp_path / "globus"))
    for var in ("QISKIT_IBM_TOKEN", "GLOBUS_COMPUTE_CLIENT_ID", "GLOBUS_COMPUTE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "config"


def doctor_json(capsys: pytest.CaptureFixture[str]) -> dict:
    assert cli.main(["doctor", "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_versions_backends_and_pools(config_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = doctor_json(capsys)
    for dist in ("parsl", "qiskit", "qiskit-aer", "numpy"):
        assert report["versions"][dist] == importlib.metadata.version(dist)
    assert report["versions"]["parsl-quantum"] == importlib.metadata.version("parsl-quantum")
    assert isinstance(report["gpus"], list)
    backends = report["backends"]
    assert "aer" in backends["simulators"] and backends["fake_devices"] > 10
    assert backends["local_pools"]["cpu"] == {"backends": ["aer"], "available": True}
    assert backends["local_pools"]["qpu"]["backends"] == [backends["default_fake_qpu"]]
    assert {f["name"] for f in report["features"]} == FEATURES
    for feature in report["features"]:
        assert feature["ok"] or feature["fix"], f"{feature['name']}: missing without a fix"


def test_gpu_feature_matches_the_machine(
    config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = doctor_json(capsys)
    gpu = next(f for f in report["features"] if f["name"] == "gpu")
    assert report["backends"]["local_pools"]["gpu"]["available"] == gpu["ok"]
    if not gpu["ok"]:
        assert "aer-gpu is unavailable" in gpu["detail"]
        if report["versions"]["qiskit-aer-gpu"] is None:
            assert "pip install 'parsl-quantum[gpu]'" in gpu["fix"]


def test_credentials_are_reported_present_or_absent_never_shown(
    config_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    features = {f["name"]: f for f in doctor_json(capsys)["features"]}
    assert (
        not features["globus"]["ok"] and "GLOBUS_COMPUTE_CLIENT_SECRET" in features["globus"]["fix"]
    )
    if not features["ibm"]["ok"]:  # unless an account is saved on this machine
        assert "QISKIT_IBM_TOKEN" in features["ibm"]["fix"]
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "canary-ibm-token-0451")
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_ID", "canary-client-id-0451")
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_SECRET", "canary-client-secret-0451")
    assert cli.main(["doctor"]) == 0
    human = capsys.readouterr().out
    features = {f["name"]: f for f in doctor_json(capsys)["features"]}
    assert features["ibm"]["ok"] and "QISKIT_IBM_TOKEN" in features["ibm"]["detail"]
    assert features["globus"]["ok"] and "environment" in features["globus"]["detail"]
    assert "canary" not in human and "canary" not in json.dumps(features)


def test_profile_status(config_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = default_profile_path()
    assert path.is_relative_to(config_home)
    profile = doctor_json(capsys)["profile"]
    assert not profile["ok"] and profile["fix"] == "parsl-quantum calibrate"
    assert "not calibrated" in profile["detail"]
    CostModel(pools={"cpu": PoolCoefficients()}).save(path)
    profile = doctor_json(capsys)["profile"]
    assert profile["ok"] and profile["path"] == str(path) and "cpu" in profile["detail"]
    path.write_text("{broken")
    profile = doctor_json(capsys)["profile"]
    assert not profile["ok"] and "cannot read profile" in profile["detail"]


def test_missing_modules_name_the_extra_to_install() -> None:
    feature = modules_feature("docs", ["sphinx", "surely_not_a_module_0451"])
    assert not feature.ok and "surely_not_a_module_0451" in feature.detail
    assert feature.fix == "pip install 'parsl-quantum[docs]'"
    assert modules_feature("miniapps", ["json"]).ok


def test_human_output_keeps_install_hints_intact(
    config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = doctor_json(capsys)
    extras = [f["name"] for f in report["features"] if "parsl-quantum[" in f["fix"]]
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "optional features" in out and "planner profile" in out and "local pools" in out
    assert "parsl-quantum calibrate" in out
    for extra in extras:  # square brackets are not taken for markup
        assert f"parsl-quantum[{extra}]" in out
