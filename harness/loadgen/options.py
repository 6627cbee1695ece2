"""The harness's Locust options, derived from a module's spec, and their validation.

`--variant`, `--scenario` and `--load` take their choices from the spec. Locust's web UI and
master bind to 127.0.0.1 unless the user asks otherwise (`--web-host`, `--master-bind-host` or their
LOCUST_* variables). A scenario's own settings (its loads' rate and users, its warm-up, its extra
`options`) become defaults for a plain `locust -f ... --scenario X` too; arguments given on the
command line or by their LOCUST_* variables win over them; so do `--knob`s over the scenario's knobs
(harness/loadgen/knobs.py).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Sequence

from harness.loadgen import knobs
from harness.shapes import PROFILES
from harness.spec import ModuleSpec, Scenario

LOOPBACK = "127.0.0.1"


def add_options(parser, spec: ModuleSpec) -> None:
    parser.set_defaults(web_host=LOOPBACK, master_bind_host=LOOPBACK)
    scenarios = [s.name for s in spec.scenarios]
    loads = sorted({load.name for s in spec.scenarios for load in s.loads})
    group = parser.add_argument_group(
        "pattern-harness", "Locust's own --profile picks the load shape: smoke, steady (default), step or spike")
    group.add_argument("--variant", choices=spec.variant_names, default="", env_var="LOCUST_VARIANT",
                       help="which variant of the pattern to load (default: the scenario's first)")
    group.add_argument("--scenario", choices=scenarios, default=spec.main_scenario or scenarios[0],
                       env_var="LOCUST_SCENARIO", help="which workload of the module to run")
    group.add_argument("--load", choices=loads or None, default="", env_var="LOCUST_LOAD",
                       help="which load of a scenario with several (its rate and users become the defaults)")
    group.add_argument("--warmup", type=float, default=5.0, env_var="LOCUST_WARMUP",
                       help="seconds at the start left out of the exact latencies and Locust's stats")
    group.add_argument("--results-file", default="", help="write exact results as JSON here on stop")
    group.add_argument("--started-file", default="",
                       help='write {"start", "measured_start"} (epoch seconds) here when the test starts')
    group.add_argument("--run-id", default="", help="run id for the harness_phase metric and write ids")
    group.add_argument("--phase", type=int, default=0, help="phase index for the harness_phase metric")
    group.add_argument("--rate", type=float, default=0.0, env_var="LOCUST_RATE",
                       help="open model: arrivals per second across all workers, served by the -u users "
                            "(0, the default: closed model)")
    group.add_argument("--arrivals", choices=["fixed", "poisson"], default="fixed", env_var="LOCUST_ARRIVALS",
                       help="open model: fixed spacing or Poisson arrivals")
    group.add_argument("--knob", action="append", default=[], metavar="SERVICE.NAME=VALUE",
                       help="set a knob of the target or a module process for the test, over the scenario's "
                            "(repeatable; the service validates it)")
    group.add_argument("--no-stack", action="store_true", default=False, env_var="LOCUST_NO_STACK",
                       help="never start the embedded stack, even when the target does not answer")


def resolve(options, spec: ModuleSpec) -> list[str]:
    """Fill the defaults that depend on the scenario; returns what is wrong, each said with what was expected."""
    found = []
    options.run_id = options.run_id or f"manual-{secrets.token_hex(4)}"  # write ids of plain runs stay unique
    options.profile = options.profile or "steady"  # Locust's free-form run label names the shape here
    if options.profile not in PROFILES:
        found.append(f"--profile must be one of {', '.join(PROFILES)}, got {options.profile!r}")
    if options.rate < 0:
        found.append(f"--rate must be >= 0 arrivals/s (0 is the closed model), got {options.rate}")
    if options.warmup < 0:
        found.append(f"--warmup must be >= 0 seconds, got {options.warmup}")
    scenario = spec.scenario(options.scenario)
    allowed = spec.scenario_variants(scenario.name)
    options.variant = options.variant or next((v for v in allowed if v in spec.default_variants), allowed[0])
    if options.variant not in allowed:
        found.append(f"scenario {scenario.name} runs the variants {', '.join(allowed)}; "
                     f"got --variant {options.variant}")
    loads = [load.name for load in scenario.loads]
    if options.load and options.load not in loads:
        found.append(f"scenario {scenario.name} has the loads {', '.join(loads) or '(none)'}; "
                     f"got --load {options.load}")
    try:
        knobs.resolve(spec, scenario.name, options.knob)
    except ValueError as exc:
        found.append(str(exc))
    return found


def scenario_args(scenario: Scenario, load_name: str) -> list[str]:
    """The scenario's settings as Locust arguments (the load: its own, or the first of several)."""
    load = next((x for x in scenario.loads if x.name == load_name), scenario.loads[0] if scenario.loads else None)
    users = (load.users if load else None) or scenario.users
    return [*(["--warmup", f"{scenario.warmup_s:g}"] if scenario.warmup_s is not None else []),
            *(["-u", str(users), "-r", str(users)] if users else []), *(["--rate", f"{load.rate:g}"] if load else []),
            *scenario.options]


def apply_scenario(parser, options, spec: ModuleSpec, argv: Sequence[str] | None = None) -> None:
    """Set the options the scenario names, unless the command line gives them (it is parsed after)."""
    args = scenario_args(spec.scenario(options.scenario), options.load)
    if not args:
        return
    argv = list(sys.argv[1:] if argv is None else argv)
    plain, with_scenario = parser.parse_known_args(args=[])[0], parser.parse_known_args(args=args)[0]
    final = parser.parse_known_args(args=[*args, *argv])[0]
    from_env = {a.dest for a in parser._actions if getattr(a, "env_var", None) and a.env_var in os.environ}
    for key, value in vars(with_scenario).items():
        if value != getattr(plain, key, None) and key not in from_env:
            setattr(options, key, getattr(final, key))
    if options.load == "" and spec.scenario(options.scenario).loads:
        options.load = spec.scenario(options.scenario).loads[0].name
