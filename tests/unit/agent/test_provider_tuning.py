"""Provider and thread tuning at load: real ONNX Runtime sessions on tiny models, no timing asserts.

A "slow provider" is a real session of the same classifier with a CPU-burning loop that adds 0 to
its answer (``busy_iterations``), and a "wrong provider" a real session of a classifier whose answer
differs; both stand where an accelerator provider would, since this box has only the CPU one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect_inference.agent.providers import CPU, ExecutionProvider, resolve
from edgeinspect_inference.agent.session import ModelSession
from edgeinspect_inference.agent.tuning import (
    Candidate,
    DecisionCache,
    Golden,
    Measurement,
    ProviderChoice,
    SessionRequest,
    ThreadConfig,
    TuningOptions,
    candidates,
    cgroup_cpu_quota,
    choose,
    open_session,
    select,
    thread_configs,
)

from tests.helpers.models import CLS_OUTPUT, INPUT_NAME, classifier_onnx, image

SLOW = ExecutionProvider("slow", "CPUExecutionProvider")
WRONG = ExecutionProvider("wrong", "CPUExecutionProvider")
OPTIONS = TuningOptions(budget_s=30.0, warmup_runs=1, timed_runs=5)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tuning-models")
    paths = {"cpu": root / "fast.onnx", "slow": root / "slow.onnx", "wrong": root / "wrong.onnx"}
    paths["cpu"].write_bytes(classifier_onnx(32, 32))
    paths["slow"].write_bytes(classifier_onnx(32, 32, busy_iterations=300))
    paths["wrong"].write_bytes(classifier_onnx(32, 32, knob=3))
    paths["int8"] = root / "int8.onnx"  # stands for a quantized model: close to fp32's answer, not equal
    paths["int8"].write_bytes(classifier_onnx(32, 32, knob=1))
    paths["missing"] = root / "absent.onnx"  # ONNX Runtime cannot load it: a provider that fails to start
    return paths


@pytest.fixture(scope="module")
def golden(models: dict[str, Path]) -> Golden:
    feeds = {INPUT_NAME: image(level=150, height=32, width=32)}
    expected = ModelSession(models["cpu"], [CPU], 1).run(feeds)
    return Golden(feeds, expected)


def builder(models: dict[str, Path]):  # type: ignore[no-untyped-def]
    """Each candidate's provider name picks the model its real CPU session runs."""

    def build(candidate: Candidate) -> ModelSession:
        path = models[candidate.provider.name]
        return ModelSession(path, [CPU], candidate.threads.intra_op, max_batch=4)

    return build


def test_thread_layouts_follow_the_cores_and_a_pinned_setting() -> None:
    assert thread_configs(1) == [ThreadConfig(1)]
    assert thread_configs(2) == [ThreadConfig(2), ThreadConfig(1)]
    assert thread_configs(8) == [ThreadConfig(8), ThreadConfig(4), ThreadConfig(4, 2, parallel=True)]
    assert thread_configs(8, fixed_intra_op=3) == [ThreadConfig(3)]
    got = candidates([SLOW, CPU], thread_configs(2))
    assert [c.label for c in got] == ["slow/2", "cpu/2", "cpu/1"]


def test_a_cgroup_quota_caps_the_cores(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(v1) == 2.0


def test_auto_names_every_provider_and_cannot_be_mixed() -> None:
    assert [p.name for p in resolve(["auto"], lambda: ["CPUExecutionProvider"])] == ["cpu"]
    with pytest.raises(ConfigError, match="'auto' cannot be combined"):
        resolve(["auto", "cuda"], lambda: ["CPUExecutionProvider"])


def test_the_slow_provider_is_left_out_even_when_it_is_the_default(
    models: dict[str, Path], golden: Golden
) -> None:
    for order in ([SLOW, CPU], [CPU, SLOW]):
        cands = [Candidate(p, ThreadConfig(1)) for p in order]
        runner, choice = select(builder(models), cands, golden, OPTIONS)
        assert choice is not None and runner is not None
        assert choice.provider == "cpu", choice
        assert choice.reason == "fastest"
        slow = next(m for m in choice.measurements if m.provider == "slow")
        assert not slow.rejected and slow.runs == OPTIONS.timed_runs


def test_a_provider_that_answers_wrongly_is_rejected_with_the_reason(
    models: dict[str, Path], golden: Golden
) -> None:
    cands = [Candidate(WRONG, ThreadConfig(1)), Candidate(CPU, ThreadConfig(1))]
    _, choice = select(builder(models), cands, golden, OPTIONS)
    assert choice is not None and choice.provider == "cpu"
    wrong = choice.measurements[0]
    assert wrong.provider == "wrong" and wrong.rejected.startswith(
        "wrong answer: output 'defect_probability'"
    )
    assert choice.reason == "only correct candidate"


def test_when_nothing_answers_right_the_caller_gets_no_runner(
    models: dict[str, Path], golden: Golden
) -> None:
    broken = Golden(golden.feeds, {CLS_OUTPUT: golden.expected[CLS_OUTPUT] + 0.5})
    runner, choice = select(builder(models), [Candidate(CPU, ThreadConfig(1))], broken, OPTIONS)
    assert runner is None and choice is not None
    assert choice.reason.startswith("no candidate matched") and choice.measurements[0].rejected


def test_a_candidate_that_cannot_start_is_rejected_and_the_budget_skips_the_rest(
    models: dict[str, Path], golden: Golden
) -> None:
    missing = ExecutionProvider("missing", "CPUExecutionProvider")
    cands = [Candidate(CPU, ThreadConfig(1)), Candidate(missing, ThreadConfig(1))]
    _, choice = select(builder(models), cands, golden, OPTIONS)
    assert choice is not None and choice.measurements[1].rejected.startswith("failed:")
    _, hurried = select(builder(models), cands, golden, TuningOptions(budget_s=1e-9, timed_runs=5))
    assert hurried is not None and hurried.provider == "cpu"
    assert hurried.measurements[0].runs == 3  # the default is always measured, 3 runs at least
    assert hurried.measurements[1].rejected.startswith("skipped: the tuning budget")


def test_the_default_stays_unless_clearly_beaten() -> None:
    default = Measurement("cpu", ThreadConfig(2), p50_ms=10.0)
    close = Measurement("cpu", ThreadConfig(1), p50_ms=9.8)
    faster = Measurement("openvino", ThreadConfig(2), p50_ms=7.0)
    rejected = Measurement("cuda", ThreadConfig(2), p50_ms=1.0, rejected="wrong answer")
    assert choose([default, close]) is default
    assert choose([default, close, faster, rejected]) is faster
    assert choose([rejected]) is None


def _request(path: Path, golden: Golden | None, sha: str = "a" * 64) -> SessionRequest:
    def load_golden() -> Golden:
        if golden is None:
            raise AssertionError("the golden input was read although the decision was cached")
        return golden

    return SessionRequest(
        ref="cls:1",
        model_path=path,
        model_sha256=sha,
        variant="fp32",
        providers=(CPU,),
        max_batch=4,
        intra_op_threads=0,
        allow_spinning=False,
        golden=load_golden,
        measure=True,
    )


def test_a_cached_decision_is_used_without_measuring(
    models: dict[str, Path], golden: Golden, tmp_path: Path
) -> None:
    options = TuningOptions(budget_s=30.0, warmup_runs=1, timed_runs=3, cache_dir=tmp_path / "cache")
    session, first = open_session(_request(models["cpu"], golden), options)
    assert first is not None and not first.cached and first.measurements
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1

    again, second = open_session(_request(models["cpu"], None), options)  # reading golden would fail
    assert second is not None and second.cached
    assert (second.provider, second.threads, second.measurements) == (
        first.provider,
        first.threads,
        first.measurements,
    )
    np.testing.assert_array_equal(again.run(golden.feeds)[CLS_OUTPUT], session.run(golden.feeds)[CLS_OUTPUT])

    _, other_model = open_session(_request(models["cpu"], golden, sha="b" * 64), options)
    assert other_model is not None and not other_model.cached


def test_the_cache_key_changes_with_the_box_and_survives_a_round_trip(tmp_path: Path) -> None:
    cands = [Candidate(CPU, ThreadConfig(2))]
    box = {"onnxruntime": "1.0", "cores": 2, "available": ["CPUExecutionProvider"]}
    key = DecisionCache.key("a" * 64, "fp32", cands, box)
    assert key != DecisionCache.key("a" * 64, "fp32", cands, box | {"cores": 4})
    assert key != DecisionCache.key("a" * 64, "fp32", cands, box | {"onnxruntime": "1.1"})
    assert key != DecisionCache.key("a" * 64, "int8", cands, box)
    cache = DecisionCache(tmp_path)
    choice = ProviderChoice("cpu", ThreadConfig(2), (Measurement("cpu", ThreadConfig(2), 1.5, 2.0, 5),))
    cache.put(key, choice)
    assert cache.get(key) == choice
    assert DecisionCache(tmp_path / "absent").get(key) is None
    (tmp_path / f"{key[:40]}.json").write_text("{not json")
    assert cache.get(key) is None


def test_tuning_off_builds_the_configured_session(models: dict[str, Path], golden: Golden) -> None:
    session, choice = open_session(_request(models["cpu"], None), TuningOptions(enabled=False))
    assert choice is None and session.provider == "cpu"


def test_when_no_candidate_answers_right_the_configured_defaults_load(
    models: dict[str, Path], golden: Golden, tmp_path: Path
) -> None:
    broken = Golden(golden.feeds, {CLS_OUTPUT: golden.expected[CLS_OUTPUT] + 0.5})
    options = TuningOptions(budget_s=30.0, warmup_runs=1, timed_runs=3, cache_dir=tmp_path)
    session, choice = open_session(_request(models["cpu"], broken), options)
    assert choice is not None and choice.reason.startswith("no candidate matched")
    assert (choice.provider, choice.threads) == (session.provider, ThreadConfig(0))
    assert all(m.rejected.startswith("wrong answer") for m in choice.measurements)
    assert not list(tmp_path.glob("*.json"))  # a fallback is never cached: the next start measures again


def test_an_int8_candidate_is_judged_against_the_cpu_providers_own_distance(
    models: dict[str, Path], golden: Golden
) -> None:
    int8 = {**models, "cpu": models["int8"]}  # the CPU provider runs the "int8" model
    int8_golden = Golden(golden.feeds, golden.expected, per_image_score=True)  # fp32's golden output
    off = float(
        np.abs(
            ModelSession(models["int8"], [CPU], 1).run(golden.feeds)[CLS_OUTPUT] - golden.expected[CLS_OUTPUT]
        ).max()
    )
    assert off > OPTIONS.int8_atol  # the int8 answer alone would miss the tolerance
    cands = [Candidate(WRONG, ThreadConfig(1)), Candidate(CPU, ThreadConfig(1))]
    runner, choice = select(builder(int8), cands, int8_golden, OPTIONS)
    assert runner is not None and choice.provider == "cpu"
    assert choice.measurements[0].rejected.startswith("wrong answer: image score")  # further off than cpu
