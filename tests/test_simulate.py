"""``lapak simulate``: the branch simulation on the real domain core.

Properties of the model (no one served before arriving, capacity never exceeded, one on-air
conversation per officer, conservation of claimants, M/M/c waits at capacity 1), determinism,
the comparison with one-to-one service, the command line, and the event log of a simulated day
replayed by the real log loader and server and checked by the auditor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lapak.cli.main import build_parser
from lapak.signaling.domain import State, apply
from lapak.signaling.eventlog import load
from lapak.signaling.events import VisitRouted, VisitStarted
from lapak.signaling.server import SignalServer
from lapak.signaling.simulation.arrivals import day_arrivals
from lapak.signaling.simulation.cli import run
from lapak.signaling.simulation.engine import simulate
from lapak.signaling.simulation.logdir import LogDirError, write_log
from lapak.signaling.simulation.params import ConfigError, Dist, load_params, parse_arrivals
from lapak.signaling.simulation.runs import Result
from lapak.signaling.simulation.sweep import parse_sweep
from lapak.signaling.tokens import KeyRing

LAPAK = [sys.executable, "-m", "lapak.cli"]
REPORT_KEYS = (
    "visits_per_officer_hour",
    "one_to_one_visits_per_officer_hour",
    "ratio_vs_one_to_one",
    "wait_p50_s",
    "wait_p95_s",
    "officer_utilisation",
    "abandon_rate",
    "time_in_visit_p50_s",
    "time_in_visit_p95_s",
    "booth_utilisation",
    "attention_debt_p95_s",
)

MMC_TOML = """
[office]
officers = 2
capacity = 1
open = "00:00"
close = "20:00"
overtime_max_s = 3600
days = 2

[arrivals]
profile = [{rates}]
claim_types = {{ MM = 1 }}

[workflows.MM]
steps = ["serve"]

[steps.serve]
talk = {{ dist = "exponential", mean = {mean} }}

[claimant]
patience = 1e9
no_show_p = 0
come_back_p = 0

[officer]
greet = 0
switch = 0
escalate_p = 0
"""


def simulate_cli(*argv: str) -> tuple[int, str]:
    """``lapak simulate ARGV`` in this process, through the real ``lapak`` parser."""
    args = build_parser().parse_args(["simulate", *argv])
    out = io.StringIO()
    code = run(args, out)
    return code, out.getvalue()


def encoded(state: State) -> bytes:
    return msgspec.json.encode(state)


# -- determinism and the comparison with one-to-one -------------------------------------


def test_same_seed_same_report_in_another_process_and_another_seed_differs() -> None:
    def report(seed: str, hashseed: str) -> dict:
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        out = subprocess.run(
            [*LAPAK, "simulate", "--days", "1", "--officers", "2", "--seed", seed,
             "--format", "json"],
            capture_output=True, text=True, timeout=120, env=env, check=True,
        )  # fmt: skip
        return json.loads(out.stdout)

    first = report("7", "1")
    assert report("7", "2") == first, "same seed, different hash seed: same numbers"
    assert report("8", "1") != first


def test_capacity_one_is_exactly_one_to_one() -> None:
    code, out = simulate_cli("--capacity", "1", "--days", "1", "--format", "json")
    rep = json.loads(out)
    assert code == 0
    assert rep["ratio_vs_one_to_one"] == 1.0
    assert rep["visits_per_officer_hour"] == rep["one_to_one_visits_per_officer_hour"]


def test_six_booths_serve_more_per_officer_hour_than_one_to_one_with_the_defaults() -> None:
    code, out = simulate_cli("--days", "1", "--format", "json")
    rep = json.loads(out)
    assert code == 0 and rep["capacity"] == 6
    assert rep["ratio_vs_one_to_one"] > 1.5
    assert rep["one_to_one"]["capacity"] == 1
    assert rep["officer_utilisation"] > rep["one_to_one"]["officer_utilisation"]


def test_same_day_is_paired_the_same_people_arrive_at_every_capacity() -> None:
    params = load_params().with_options(days=1, officers=2)
    narrow = params.with_options(capacity=1)
    people = day_arrivals(params, 3, 0)
    assert len(people) > 100
    assert people == day_arrivals(narrow, 3, 0), "same arrivals, durations and outcomes"
    assert people != day_arrivals(params, 4, 0)


# -- properties of every run -------------------------------------------------------------


def check_invariants(result: Result) -> None:
    """What must hold whatever the parameters."""
    tally, params = result.tally, result.params
    assert tally.in_progress == 0, "every day drains: nobody is left inside"
    assert tally.arrivals == sum(tally.labels.values())
    for visit, first in tally.first_talk.items():
        assert first >= tally.arrivals_at[visit], f"{visit} spoken to before arriving"
    for desk, spans in tally.on_air_intervals.items():
        for (s1, e1), (s2, e2) in itertools.pairwise(spans):
            assert s1 <= e1 <= s2 <= e2, f"{desk}: two conversations at once"
    state = State()
    for event in result.events:
        apply(state, event)
        if isinstance(event, VisitStarted):
            assert event.at >= tally.arrivals_at[event.visit]
        if isinstance(event, VisitRouted):
            desk = state.desks[event.desk]
            assert len(desk.slots) <= desk.capacity == params.capacity
            assert max(desk.slots) <= desk.capacity
    assert encoded(state) == encoded(result.state), "replaying the events gives the state"
    assert tally.on_air_s <= tally.staffed_s


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    officers=st.integers(1, 3),
    capacity=st.integers(1, 6),
    rate=st.integers(2, 90),
    extra_booths=st.integers(0, 4),
    seed=st.integers(0, 10_000),
    patience=st.sampled_from([0.0, 120.0, None]),
    no_show_p=st.sampled_from([0.0, 0.5]),
    fail_p=st.sampled_from([0.0, 0.1, 0.4]),
    overtime=st.sampled_from([0.0, 3600.0]),
    parallel=st.integers(1, 6),
)
def test_no_one_early_capacity_kept_one_conversation_at_a_time_everyone_counted(
    officers: int,
    capacity: int,
    rate: int,
    extra_booths: int,
    seed: int,
    patience: float | None,
    no_show_p: float,
    fail_p: float,
    overtime: float,
    parallel: int,
) -> None:
    params = load_params().with_options(
        officers=officers,
        capacity=capacity,
        booths=officers * capacity + extra_booths,
        arrivals=str(rate),
        days=1,
    )
    params = dataclasses.replace(
        params,
        patience=params.patience if patience is None else Dist("fixed", patience),
        no_show_p=no_show_p,
        overtime_max_s=overtime,
        off_air_parallel=parallel,
        steps={
            name: dataclasses.replace(step, fail_p=fail_p, retry_p=min(step.retry_p, 1 - fail_p))
            for name, step in params.steps.items()
        },
    )
    check_invariants(simulate(params, seed, keep_events=True, trace=True))


def test_invariants_over_several_days_with_come_backs_and_a_queue_in_the_booths() -> None:
    params = load_params().with_options(officers=2, capacity=3, booths=9, days=3)
    result = simulate(params, 11, keep_events=True, trace=True)
    check_invariants(result)
    assert result.tally.labels["rejected"] > 0 and result.tally.labels["abandoned"] > 0
    attempts = [e.membership_no for e in result.events if isinstance(e, VisitStarted)]
    assert any(m.endswith("1") for m in attempts), "a refused claimant came back"


FIXED_TOML = """
[office]
officers = 1
capacity = {capacity}
days = 1

[arrivals]
profile = [4, 4, 4, 4, 4, 4, 4, 4]
claim_types = {{ T = 1 }}

[workflows.T]
steps = ["a", "b", "c"]

[steps.default]
prep = 5
talk = 10
review = 5
retry_p = 0
fail_p = 0

[claimant]
patience = 1e9
no_show_p = 0
come_back_p = 0

[officer]
greet = 0
switch = 100
escalate_p = 0
"""


def test_going_back_to_the_same_booth_costs_no_switch(tmp_path: Path) -> None:
    """One switch per visit one-to-one (a new claimant), not one per step: the officer
    who paused while a document was checked has not turned to another booth."""
    config = tmp_path / "fixed.toml"
    config.write_text(FIXED_TOML.format(capacity=1))
    tally = simulate(load_params(config), 2).tally
    assert tally.served > 10 and tally.served == tally.labels["completed"]
    assert tally.on_air_s == pytest.approx(tally.served * (100 + 3 * 10))


def erlang_c_wait(servers: int, arrival_rate: float, mean_service: float) -> tuple[float, float]:
    """M/M/c: probability of waiting and the mean wait in the queue."""
    a = arrival_rate * mean_service
    top = a**servers / math.factorial(servers) * servers / (servers - a)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(servers)) + top)
    return p_wait, p_wait / (servers / mean_service - arrival_rate)


def test_capacity_one_waits_match_the_erlang_c_formula(tmp_path: Path) -> None:
    per_hour, mean = 270, 20.0  # two officers at 75% load
    config = tmp_path / "mmc.toml"
    config.write_text(MMC_TOML.format(rates=", ".join([str(per_hour)] * 20), mean=mean))
    result = simulate(load_params(config), 1)
    waits = result.tally.waits
    p_wait, mean_wait = erlang_c_wait(2, per_hour / 3600, mean)
    assert len(waits) > 10_000
    assert sum(w > 0 for w in waits) / len(waits) == pytest.approx(p_wait, rel=0.08)
    assert sum(waits) / len(waits) == pytest.approx(mean_wait, rel=0.2)


# -- the event log of a simulated day ----------------------------------------------------


async def test_log_dir_is_replayed_by_the_log_loader_and_the_real_server(tmp_path: Path) -> None:
    params = load_params().with_options(officers=2, capacity=4, days=2)
    result = simulate(params, 5, keep_events=True)
    data = tmp_path / "sim"
    path = await asyncio.to_thread(write_log, data, result.events)  # it runs its own loop
    assert encoded(load(path).state) == encoded(result.state)
    server = SignalServer(data, KeyRing.generate(), host="127.0.0.1", port=0)
    await server.start()
    try:
        assert server.hub is not None
        assert encoded(server.hub.state) == encoded(result.state)
    finally:
        await server.close()
    with pytest.raises(LogDirError, match="already exists"):
        write_log(data, result.events)


def test_cli_log_dir_passes_audit_verify(tmp_path: Path) -> None:
    data = tmp_path / "day"
    sim = subprocess.run(
        [*LAPAK, "simulate", "--days", "1", "--officers", "1", "--log-dir", str(data)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    assert "audit verify" in sim.stdout
    audit = subprocess.run(
        [*LAPAK, "audit", "verify", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert " 0 problems" in audit.stdout


# -- the command line --------------------------------------------------------------------


def test_json_is_one_object_with_the_keys() -> None:
    out = subprocess.run(
        [*LAPAK, "simulate", "--days", "1", "--officers", "1", "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    for key in REPORT_KEYS:
        assert key in rep, key
        assert rep[key] is None or isinstance(rep[key], int | float)


def test_text_is_a_table_beside_one_to_one() -> None:
    code, out = simulate_cli("--days", "1", "--officers", "1", "--capacity", "4")
    assert code == 0
    assert "capacity 4" in out and "one-to-one" in out
    assert "visits per officer-hour" in out and "ratio vs one-to-one" in out


@pytest.mark.parametrize(
    ("toml", "argv", "says"),
    [
        ("[office]\nofficer = 2\n", (), "unknown [office] keys"),
        ("[steps.identity]\ntalk = { dist = 'normal', mean = 3 }\n", (), "steps.identity.talk"),
        ("[steps.identity]\ntalk = { dist = 'lognormal', mean = 3 }\n", (), "takes exactly"),
        ("[claimant]\nno_show_p = 1.5\n", (), "probability"),
        ("[arrivals]\nprofile = [10, 20]\n", (), "profile has 2 hours"),
        ("[arrivals]\nclaim_types = { XYZ = 1 }\n", (), "no workflow"),
        ("[office]\nopen = 'eight'\n", (), "08:00"),
        ("[steps.identty]\ntalk = 5\n", (), "[steps.identty] is not a step"),
        ("not toml = = =\n", (), "not valid TOML"),
        ("", ("--capacity", "7"), "capacity must be 1..6"),
        ("", ("--arrivals", "10,20"), "2 rates for 8 opening hours"),
        ("", ("--sweep", "speed=1..3"), "--sweep"),
        ("", ("--sweep", "capacity=4..2"), "empty"),
        ("", ("--png", "x.png"), "--sweep"),
    ],
)
def test_bad_config_or_option_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, argv: tuple[str, ...], says: str
) -> None:
    config = tmp_path / "office.toml"
    config.write_text(toml)
    code, out = simulate_cli("--config", str(config), *argv)
    err = capsys.readouterr().err
    assert code == 2 and out == ""
    assert err.startswith("lapak simulate: ") and err.count("\n") == 1, err
    assert says in err


def test_bad_config_from_the_shell_has_no_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    out = subprocess.run(
        [*LAPAK, "simulate", "--config", str(missing)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "nope.toml" in out.stderr
    assert (
        "simulate"
        in subprocess.run([*LAPAK, "--help"], capture_output=True, text=True, timeout=60).stdout
    )


def test_sweep_without_plotext_prints_the_table_and_how_to_get_the_plot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "plotext", None)  # import plotext raises ImportError
    code, out = simulate_cli("--days", "1", "--officers", "1", "--sweep", "capacity=1..3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["officers", "capacity", "booths"]
    assert [line.split()[1] for line in lines[1:4]] == ["1", "2", "3"]
    assert "pip install 'lapak[sim]'" in out


def test_sweep_json_rows_and_the_terminal_plot_when_plotext_is_there() -> None:
    code, out = simulate_cli(
        "--days", "1", "--sweep", "capacity=1,3", "officers=1..2", "--format", "json"
    )
    rows = json.loads(out)["sweep"]
    assert code == 0
    assert [(r["officers"], r["capacity"]) for r in rows] == [(1, 1), (1, 3), (2, 1), (2, 3)]
    assert all(r["capacity"] != 1 or r["ratio_vs_one_to_one"] == 1.0 for r in rows)
    pytest.importorskip("plotext")
    code, out = simulate_cli("--days", "1", "--sweep", "capacity=1..2", "officers=1..2")
    assert code == 0 and "visits per officer-hour" in out and "officers 2" in out


def test_png_without_matplotlib_says_how_to_get_it_before_running(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "x.png"
    code, out = simulate_cli("--sweep", "capacity=1..2", "--png", str(png))
    err = capsys.readouterr().err
    assert code == 2 and out == "" and not png.exists()
    assert "--png needs matplotlib" in err and "lapak[sim]" in err


def test_sweep_png_when_matplotlib_is_there(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "sweep.png"
    code, out = simulate_cli(
        "--days", "1", "--officers", "1", "--sweep", "capacity=1..2", "--png", str(png)
    )
    assert code == 0 and f"plot written to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- parameters --------------------------------------------------------------------------


def test_shipped_defaults_load_and_user_files_merge_over_them(tmp_path: Path) -> None:
    base = load_params()
    assert base.capacity == 6 and base.booth_count == base.officers * 6
    assert len(base.profile) == base.open_hours
    config = tmp_path / "office.toml"
    config.write_text("[office]\nofficers = 2\n[steps.identity]\ntalk = 99\n")
    mine = load_params(config)
    assert mine.officers == 2 and mine.step("identity").talk == Dist("fixed", 99.0)
    assert mine.step("identity").prep == base.step("identity").prep
    assert mine.step("bank_book") == base.step("bank_book")


def test_distributions_have_the_configured_means() -> None:
    import random

    rng = random.Random(1)
    for dist in (Dist("lognormal", 60, 0.5), Dist("exponential", 60), Dist("uniform", 30, 90)):
        samples = [dist.sample(rng) for _ in range(20_000)]
        assert min(samples) >= 0
        assert sum(samples) / len(samples) == pytest.approx(dist.mean, rel=0.03)
    assert Dist("fixed", 5).sample(rng) == 5


def test_arrivals_and_sweep_specs() -> None:
    assert parse_arrivals("40", 3) == (40.0, 40.0, 40.0)
    assert parse_arrivals("1,2,3", 3) == (1.0, 2.0, 3.0)
    with pytest.raises(ConfigError):
        parse_arrivals("-1", 3)
    axes = parse_sweep(["capacity=1..3", "officers=1,4"])
    assert [(a.key, a.values) for a in axes] == [
        ("capacity", ("1", "2", "3")),
        ("officers", ("1", "4")),
    ]
    with pytest.raises(ConfigError, match="twice"):
        parse_sweep(["capacity=1", "capacity=2"])
